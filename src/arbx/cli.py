"""The ``arbx`` command: the composition root, the only place where concrete pieces meet.

A user mistake (a bad file, an unknown token, an amount out of range) ends with one line on
stderr and exit code 2; nothing here prints a traceback for it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``arbx`` console command."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "quote":
            return _quote(args)
        if args.command == "arb":
            return _arb(args)
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
