"""Offline commands on pool files: ``quote``, ``arb`` and the ``demo``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from arbx import safejson
from arbx.cli.args import amount, count
from arbx.domain.arbitrage import evaluate
from arbx.domain.errors import InputError
from arbx.domain.poolfile import checksum, parse_document
from arbx.domain.pools import Pool, V3Pool, direction
from arbx.domain.profit import Costs
from arbx.domain.routes import find_cycles

MAINNET_WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
DEFAULT_ROUTE_LIMIT = 200_000
MAX_POOL_FILE_BYTES = 256 * 1024 * 1024
REPO_ROOT = Path(__file__).resolve().parents[3]
DEMO_FIXTURES = REPO_ROOT / "tests" / "fixtures" / "mainnet"


def register(sub: Any) -> None:
    """Add ``quote``, ``arb`` and ``demo``."""
    quote = sub.add_parser("quote", help="exact swap results on one pool state")
    quote.add_argument("--pool", required=True, type=Path, help="pool file (project format)")
    quote.add_argument("--address", help="which pool, when the file holds several")
    quote.add_argument("--token-in", required=True, help="address of the token sold")
    quote.add_argument("--amount-in", type=amount, action="append", default=[], metavar="N")
    quote.add_argument("--amount-out", type=amount, action="append", default=[], metavar="N")
    quote.add_argument("--sqrt-price-limit", type=amount, metavar="X96", help="V3 price limit")
    quote.set_defaults(handler=_quote)

    arb = sub.add_parser("arb", help="profitable cycles in a set of pool states")
    arb.add_argument("--pools", required=True, type=Path, help="pool file (project format)")
    arb.add_argument("--base", help="base token address (default: WETH)")
    arb.add_argument("--max-hops", type=count, default=4)
    arb.add_argument("--gas-price", type=count, default=10 * 10**9, metavar="WEI")
    arb.add_argument("--max-input", type=amount, metavar="N", help="cap on the input")
    arb.add_argument("--builder-share-bps", type=count, default=0, metavar="BPS")
    arb.add_argument("--min-profit", type=count, default=1, metavar="N", help="least net profit")
    arb.add_argument("--limit", type=count, default=0, help="print at most this many (0: all)")
    arb.set_defaults(handler=_arb)

    demo = sub.add_parser("demo", help="the offline demo on the bundled mainnet states")
    demo.set_defaults(handler=lambda _args: _demo())


def load_pool_file(path: Path) -> list[Pool]:
    """Pools from a file; InputError for a missing, unreadable, oversize or malformed one."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_POOL_FILE_BYTES + 1)  # bounded even for /dev/zero or a FIFO
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        doc = safejson.loads(raw, max_bytes=MAX_POOL_FILE_BYTES)
    except safejson.JsonTooLargeError:
        raise InputError(f"{path} is over {MAX_POOL_FILE_BYTES} bytes") from None
    except safejson.JsonError as exc:
        raise InputError(f"{path} is refused: {exc}") from None
    try:
        return parse_document(doc)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None


def _quote(args: argparse.Namespace) -> int:
    pools = load_pool_file(args.pool)
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
    for value, exact_in in [(a, True) for a in args.amount_in] + [
        (a, False) for a in args.amount_out
    ]:
        if isinstance(pool, V3Pool):
            swap = pool.swap_exact_in if exact_in else pool.swap_exact_out
            quote = swap(zero_for_one, value, limit)
        else:
            quote = (pool.swap_exact_in if exact_in else pool.swap_exact_out)(zero_for_one, value)
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
    pools = load_pool_file(args.pools)
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
        pools = load_pool_file(DEMO_FIXTURES / name)
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
