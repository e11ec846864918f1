"""The ``arbx`` command: the composition root, the only place where concrete pieces meet.

A user mistake (a bad file, an unknown token, an amount out of range) ends with one line on
stderr and exit code 2; nothing here prints a traceback for it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from arbx import __version__
from arbx.domain.arbitrage import evaluate
from arbx.domain.errors import ArbxError, ConfigError, InputError, MathError
from arbx.domain.poolfile import checksum, parse_document
from arbx.domain.pools import UINT256_MAX, Pool, V3Pool, direction
from arbx.domain.profit import Costs
from arbx.domain.routes import find_cycles

EXIT_USAGE = 2
MAINNET_WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
DEFAULT_ROUTE_LIMIT = 200_000
REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_FIXTURES = REPO_ROOT / "tests" / "fixtures" / "mainnet"


class _Parser(argparse.ArgumentParser):
    """argparse that exits with one line and code 2 on a usage error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"arbx: error: {message} (see 'arbx {self._sub()}--help')\n")

    def _sub(self) -> str:
        parts = self.prog.split()[1:]
        return " ".join(parts) + " " if parts else ""


def _amount(text: str) -> int:
    """A whole token amount from 1 to 2^256-1, in the token's smallest unit."""
    cleaned = text.replace("_", "")
    if not cleaned.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of smallest units")
    value = int(cleaned)
    if not 0 < value <= UINT256_MAX:
        raise argparse.ArgumentTypeError(f"{text} is outside 1 .. 2^256-1")
    return value


def _count(text: str) -> int:
    """A non-negative integer option."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative integer")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    """The command-line grammar."""
    parser = _Parser(prog="arbx", description="ARBITRAGEXPLUS-II: DEX-arbitrage searcher")
    parser.add_argument("--version", action="version", version=f"arbx {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    quote = sub.add_parser("quote", help="exact swap results on one pool state")
    quote.add_argument("--pool", required=True, type=Path, help="pool file (project format)")
    quote.add_argument("--address", help="which pool, when the file holds several")
    quote.add_argument("--token-in", required=True, help="address of the token sold")
    quote.add_argument("--amount-in", type=_amount, action="append", default=[], metavar="N")
    quote.add_argument("--amount-out", type=_amount, action="append", default=[], metavar="N")
    quote.add_argument("--sqrt-price-limit", type=_amount, metavar="X96", help="V3 price limit")

    arb = sub.add_parser("arb", help="profitable cycles in a set of pool states")
    arb.add_argument("--pools", required=True, type=Path, help="pool file (project format)")
    arb.add_argument("--base", help="base token address (default: WETH)")
    arb.add_argument("--max-hops", type=_count, default=4)
    arb.add_argument("--gas-price", type=_count, default=10 * 10**9, metavar="WEI")
    arb.add_argument("--max-input", type=_amount, metavar="N", help="cap on the input")
    arb.add_argument("--builder-share-bps", type=_count, default=0, metavar="BPS")
    arb.add_argument("--min-profit", type=_count, default=1, metavar="N", help="least net profit")
    arb.add_argument("--limit", type=_count, default=0, help="print at most this many (0: all)")

    sub.add_parser("demo", help="the offline demo on the bundled mainnet states")

    db = sub.add_parser("db", help="database migrations")
    db.add_argument("--config", type=Path, help="settings file (TOML)")
    db.add_argument("action", choices=["upgrade", "current"])

    report = sub.add_parser("report", help="the shadow-mode validation report of a run")
    report.add_argument("--config", type=Path, help="settings file (TOML)")
    report.add_argument("--json", action="store_true", help="machine-readable output")
    report.add_argument("--run", type=_count, help="run id (default: the latest)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``arbx`` console command."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "quote":
            return _quote(args)
        if args.command == "arb":
            return _arb(args)
        if args.command == "db":
            return _db(args)
        if args.command == "report":
            return _report(args)
        return _demo()
    except ConfigError as exc:
        return _fail(str(exc))
    except MathError as exc:
        return _fail(f"the pool cannot do this: {exc}")
    except ArbxError as exc:
        return _fail(f"{type(exc).__name__}: {exc}")
    except BrokenPipeError:
        return 0


def _fail(message: str) -> int:
    print(f"arbx: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _load(path: Path) -> list[Pool]:
    """Pools from a file; InputError for a missing, unreadable or malformed one."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    try:
        return parse_document(doc)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None


def _quote(args: argparse.Namespace) -> int:
    pools = _load(args.pool)
    if args.address:
        wanted = checksum(args.address, "--address")
        chosen = [p for p in pools if p.address == wanted]
        if not chosen:
            raise InputError(f"pool {wanted} is not in {args.pool}")
        pool = chosen[0]
    elif len(pools) == 1:
        pool = pools[0]
    else:
        raise InputError(f"{args.pool} holds {len(pools)} pools: choose one with --address")
    if not args.amount_in and not args.amount_out:
        raise InputError("give at least one --amount-in or --amount-out")
    token_in = checksum(args.token_in, "--token-in")
    zero_for_one = direction(pool, token_in)
    limit = args.sqrt_price_limit
    if limit is not None and not isinstance(pool, V3Pool):
        raise InputError("--sqrt-price-limit applies to V3 pools only")
    for amount, exact_in in [(a, True) for a in args.amount_in] + [
        (a, False) for a in args.amount_out
    ]:
        if isinstance(pool, V3Pool):
            swap = pool.swap_exact_in if exact_in else pool.swap_exact_out
            quote = swap(zero_for_one, amount, limit)
        else:
            quote = (pool.swap_exact_in if exact_in else pool.swap_exact_out)(zero_for_one, amount)
        print(
            json.dumps(
                {
                    "amount_in": str(quote.amount_in),
                    "amount_out": str(quote.amount_out),
                    "partial": quote.partial,
                }
            )
        )
    return 0


def _arb(args: argparse.Namespace) -> int:
    pools = _load(args.pools)
    base = checksum(args.base, "--base") if args.base else MAINNET_WETH
    tokens = {t.address for p in pools for t in (p.token0, p.token1)}
    if base not in tokens:
        raise InputError(f"base token {base} is in no pool of {args.pools} (set --base)")
    if args.max_hops < 2:
        raise InputError("--max-hops must be at least 2")
    if args.builder_share_bps > 10_000:
        raise InputError("--builder-share-bps must be at most 10000")
    routes = find_cycles(pools, [base], max_hops=args.max_hops, limit=DEFAULT_ROUTE_LIMIT)
    costs = Costs(
        base_fee_wei=args.gas_price,
        builder_share_bps=args.builder_share_bps,
        min_net_profit=max(1, args.min_profit),
    )
    caps = {base: args.max_input} if args.max_input else None
    found = evaluate(routes, {p.address: p for p in pools}, costs, caps)
    if args.limit:
        found = found[: args.limit]
    print(json.dumps([o.to_json() for o in found], indent=2))
    return 0


def _database_url(config: Path | None) -> str:
    from arbx.config import load_settings

    return load_settings(config).database_url


def _db(args: argparse.Namespace) -> int:
    from arbx.store import migrate

    url = _database_url(args.config)
    with _database_errors(url):
        if args.action == "upgrade":
            migrate.upgrade(url)
        print(f"database {_redacted(url)} at revision {migrate.current(url)}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from arbx.store import make_engine, make_session_factory, migrate, repo

    url = _database_url(args.config)
    with _database_errors(url):
        migrate.upgrade(url)
        factory = make_session_factory(make_engine(url), readonly=True)
        with factory.begin() as session:
            data = repo.report(session, args.run)
    if args.json:
        print(json.dumps(_jsonable(data), indent=2))
        return 0
    run = data["run"]
    latency = data["latency_ms"]
    print(f"run {run['id']} ({run['mode']}, {run['status']}), chain {run['chain_id']}")
    print(f"  started {run['started_at']}, ended {run['ended_at'] or '-'}")
    print(f"  blocks seen            {data['blocks']}")
    print(f"  opportunities          {data['opportunities']}")
    print(f"  expected net profit    {data['expected_net_profit_wei']} wei")
    print(
        f"  detection latency ms   p50 {_ms(latency['p50'])}  p90 {_ms(latency['p90'])}"
        f"  p99 {_ms(latency['p99'])}"
    )
    print(
        f"  state parity           {data['parity']['checks']} checks, "
        f"{data['parity']['failures']} failures"
    )
    for row in data["by_route"][:10]:
        print(f"  {row['count']:>6} x {row['expected_net_profit_wei']:>24} wei  {row['route_key']}")
    return 0


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _jsonable(value: Any) -> Any:
    """Report data as JSON: wei amounts as decimal strings, times as ISO 8601."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, float | str):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**53 else str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _redacted(url: str) -> str:
    """A database URL without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<database>"


@contextmanager
def _database_errors(url: str) -> Iterator[None]:
    """Turn an unreachable or broken database into one ConfigError line."""
    from sqlalchemy.exc import ArgumentError, OperationalError

    try:
        yield
    except (OperationalError, ArgumentError) as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise ConfigError(f"database {_redacted(url)}: {detail}") from None


def _demo() -> int:
    """Offline demo: the searcher on real mainnet states shipped with the repository."""
    cases = [
        ("v2_triangular_arb_11117996.json", "4-hop Uniswap V2 cycle, block 11,117,996"),
        ("v2_v3_wbtc_weth_17600000.json", "Uniswap V2 vs V3 WBTC/WETH, block 17,600,000"),
    ]
    for name, title in cases:
        pools = _load(DEMO_FIXTURES / name)
        routes = find_cycles(pools, [MAINNET_WETH], max_hops=4)
        found = evaluate(routes, {p.address: p for p in pools}, Costs(min_net_profit=1))
        print(f"== {title}: {len(pools)} pools, {len(routes)} cycles from WETH")
        if not found:
            print("   no profitable cycle")
        for o in found[:3]:
            path = " -> ".join(_symbol(pools, t) for t in o.route.tokens)
            print(f"   {path}: in {o.amount_in} wei, gross profit {o.gross_profit} wei")
    return 0


def _symbol(pools: Sequence[Pool], address: str) -> str:
    for pool in pools:
        for token in (pool.token0, pool.token1):
            if token.address == address and token.symbol:
                return token.symbol
    return address[:8]


if __name__ == "__main__":
    sys.exit(main())
