"""A synthetic, deterministic pool universe for the route re-evaluation benchmark.

Plain data in the project's pool format (``/work/shared/fixtures/README.md``), so
``arbx.domain.poolfile.parse_document`` reads it like any fixture. Nothing here is real chain
state except WETH's address: token addresses are random, reserves are drawn around a price list
in WETH, and each pool's price sits inside its no-arbitrage band (within half its fee of the
list price), as after a block whose opportunities were all taken: no cycle pays before the
changes, and the changes are what open new ones.

- Tokens: hubs (WETH, USDC, USDT, DAI, WBTC) and a long tail with random decimals and prices.
- Pools: every hub pair on both V2 venues (fee 30 bps) and every V3 fee tier; each long-tail
  token on a few venues against WETH or a stablecoin. A V3 pool holds a full-range position plus
  a few concentrated ones, some in range and one out of range, so every pool has a few ticks.
- Changes: ``changed_pools`` moves some pools as one block of swaps would: a V2 pool by an exact
  swap, a V3 pool to another price inside its current liquidity range (no tick crossed).
"""

from __future__ import annotations

import itertools
import math
import random
from decimal import Decimal, localcontext
from typing import Any

from eth_utils import to_checksum_address

from bench.fixtures import WETH

CHAIN_ID = 1
BLOCK = 20_000_000
V2_VENUES = ("uniswap_v2", "sushiswap")
V3_TICK_SPACING = {100: 1, 500: 10, 3000: 60, 10000: 200}
MIN_TICK = -887272
MAX_TICK = 887272

# symbol, decimals, price in WETH of one whole token (rough 2024 levels; only ratios matter)
TOKEN_MODELS: tuple[tuple[str, int, float], ...] = (
    ("USDC", 6, 1 / 3000),
    ("USDT", 6, 1 / 3000),
    ("DAI", 18, 1 / 3000),
    ("WBTC", 8, 16.0),
    ("LINK", 18, 0.005),
    ("UNI", 18, 0.003),
    ("AAVE", 18, 0.03),
    ("MKR", 18, 0.5),
    ("CRV", 18, 0.0002),
    ("LDO", 18, 0.0007),
    ("SNX", 18, 0.001),
    ("COMP", 18, 0.02),
    ("PEPE", 18, 3e-9),
    ("SHIB", 18, 7e-9),
    ("APE", 18, 0.0005),
    ("MATIC", 18, 0.0002),
    ("RPL", 18, 0.008),
    ("FXS", 18, 0.002),
    ("BAL", 18, 0.001),
    ("ENS", 18, 0.006),
    ("GRT", 18, 0.00005),
    ("1INCH", 18, 0.0001),
    ("SUSHI", 18, 0.0003),
    ("YFI", 18, 2.5),
)


HUBS = 5  # WETH and the first four token models: the tokens most pools pair with
LONG_TAIL_VENUES: tuple[tuple[str, int | None, float], ...] = (
    # (venue, V3 fee or None for V2, chance that a long-tail token has a pool there)
    ("uniswap_v2", None, 0.85),
    ("sushiswap", None, 0.35),
    ("uniswap_v3", 3000, 0.55),
    ("uniswap_v3", 10000, 0.3),
    ("uniswap_v3", 500, 0.1),
)


def generate_universe(n_pools: int = 1000, seed: int = 1) -> dict[str, Any]:
    """A document ``{"description", "seed", "venues", "pools"}`` with ``n_pools`` pools.

    Shaped like a real chain: a few hub tokens (WETH, stablecoins, WBTC) paired with each other
    on every venue and fee tier, and a long tail of tokens each with a few pools, mostly against
    WETH, sometimes against a stablecoin.
    """
    rng = random.Random(seed)
    hubs = _tokens(rng, HUBS)
    pools: list[dict[str, Any]] = []
    venues: dict[str, str] = {}

    def add(a: dict[str, Any], b: dict[str, Any], venue: str, fee: int | None) -> None:
        pool = _v2_pool(rng, a, b) if fee is None else _v3_pool(rng, a, b, fee)
        venues[pool["address"]] = venue
        pools.append(pool)

    for a, b in itertools.combinations(hubs, 2):
        for venue in V2_VENUES:
            add(a, b, venue, None)
        for fee in V3_TICK_SPACING:
            add(a, b, "uniswap_v3", fee)
    n_tail = 0
    while len(pools) < n_pools:
        token = _long_tail_token(rng)
        n_tail += 1
        quote = hubs[0] if rng.random() < 0.8 else rng.choice(hubs[1:3])
        for venue, fee, chance in LONG_TAIL_VENUES:
            if len(pools) < n_pools and rng.random() < chance:
                add(token, quote, venue, fee)
        if len(pools) < n_pools and rng.random() < 0.2:  # a second market against a stable
            add(token, rng.choice(hubs[1:4]), "uniswap_v3", 3000)
    rng.shuffle(pools)
    n_v2 = sum(p["family"] == "uniswap_v2" for p in pools)
    return {
        "description": (
            f"Synthetic universe: {n_pools} pools ({n_v2} V2 on {len(V2_VENUES)} venues, "
            f"{n_pools - n_v2} V3) over {HUBS} hub tokens and {n_tail} long-tail tokens; "
            f"seed {seed}. Not chain data."
        ),
        "seed": seed,
        "venues": venues,
        "pools": pools,
    }


def _long_tail_token(rng: random.Random) -> dict[str, Any]:
    decimals = rng.choice((18, 18, 18, 18, 9, 8, 6))
    price = math.exp(rng.uniform(math.log(1e-9), math.log(0.5)))  # in WETH per whole token
    return {"address": _random_address(rng), "symbol": None, "decimals": decimals, "price": price}


def changed_pools(
    universe: dict[str, Any], n_changed: int = 50, seed: int = 2
) -> list[dict[str, Any]]:
    """New states, one block later, for ``n_changed`` pools of ``universe`` picked by ``seed``."""
    rng = random.Random(seed)
    picked = rng.sample(universe["pools"], n_changed)
    return [
        _moved_v2(rng, pool) if pool["family"] == "uniswap_v2" else _moved_v3(rng, pool)
        for pool in picked
    ]


# -- tokens and prices ------------------------------------------------------------------------


def _tokens(rng: random.Random, n_tokens: int) -> list[dict[str, Any]]:
    """WETH and the first ``n_tokens - 1`` token models."""
    weth = {"address": WETH, "symbol": "WETH", "decimals": 18, "price": 1.0}
    others = [
        {"address": _random_address(rng), "symbol": symbol, "decimals": decimals, "price": price}
        for symbol, decimals, price in TOKEN_MODELS[: n_tokens - 1]
    ]
    return [weth, *others]


def _random_address(rng: random.Random) -> str:
    return str(to_checksum_address(f"0x{rng.getrandbits(160):040x}"))


def _ordered(a: dict[str, Any], b: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(token0, token1) sorted by address, as the factories do."""
    return (a, b) if int(a["address"], 16) < int(b["address"], 16) else (b, a)


def _token_field(token: dict[str, Any]) -> dict[str, Any]:
    return {k: token[k] for k in ("address", "symbol", "decimals")}


def _virtual_reserves(
    rng: random.Random, token0: dict[str, Any], token1: dict[str, Any], fee: float
) -> tuple[int, int]:
    """Reserves in smallest units worth a random TVL; price within ``fee / 2`` of the list."""
    has_weth = WETH in (token0["address"], token1["address"])
    tvl_weth = math.exp(rng.gauss(math.log(400 if has_weth else 40), 1.2))
    jitter = math.exp(rng.uniform(-fee / 2, fee / 2))
    reserve0 = tvl_weth / 2 / token0["price"] * 10 ** token0["decimals"]
    reserve1 = tvl_weth / 2 / token1["price"] * 10 ** token1["decimals"] * jitter
    return max(int(reserve0), 10**3), max(int(reserve1), 10**3)


def _base(token0: dict[str, Any], token1: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    return {
        "address": _random_address(rng),
        "chain_id": CHAIN_ID,
        "block": BLOCK,
        "token0": _token_field(token0),
        "token1": _token_field(token1),
    }


# -- V2 ---------------------------------------------------------------------------------------


def _v2_pool(rng: random.Random, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    token0, token1 = _ordered(a, b)
    reserve0, reserve1 = _virtual_reserves(rng, token0, token1, 0.003)
    return {
        "family": "uniswap_v2",
        **_base(token0, token1, rng),
        "fee_bps": 30,
        "reserve0": str(reserve0),
        "reserve1": str(reserve1),
    }


def _moved_v2(rng: random.Random, pool: dict[str, Any]) -> dict[str, Any]:
    """The pool after one exact swap of 0.01% to 2% of the input reserve (log-uniform: swap sizes
    span orders of magnitude), in a random direction."""
    reserve0, reserve1 = int(pool["reserve0"]), int(pool["reserve1"])
    zero_for_one = rng.random() < 0.5
    r_in, r_out = (reserve0, reserve1) if zero_for_one else (reserve1, reserve0)
    amount_in = max(1, int(r_in * math.exp(rng.uniform(math.log(1e-4), math.log(2e-2)))))
    fee_bps = int(pool["fee_bps"])
    with_fee = amount_in * (10_000 - fee_bps)
    amount_out = with_fee * r_out // (r_in * 10_000 + with_fee)
    r_in, r_out = r_in + amount_in, r_out - amount_out
    reserve0, reserve1 = (r_in, r_out) if zero_for_one else (r_out, r_in)
    return {
        **pool,
        "block": int(pool["block"]) + 1,
        "reserve0": str(reserve0),
        "reserve1": str(reserve1),
    }


# -- V3 ---------------------------------------------------------------------------------------


def _sqrt_price_x96_inside(tick: int) -> int:
    """A sqrt price half way through ``tick`` (so TickMath.getTickAtSqrtRatio gives ``tick``)."""
    with localcontext() as ctx:
        ctx.prec = 80
        return int(Decimal("1.0001") ** (Decimal(2 * tick + 1) / 4) * (Decimal(2) ** 96))


def _v3_pool(rng: random.Random, a: dict[str, Any], b: dict[str, Any], fee: int) -> dict[str, Any]:
    token0, token1 = _ordered(a, b)
    spacing = V3_TICK_SPACING[fee]
    x, y = _virtual_reserves(rng, token0, token1, fee / 1_000_000)
    tick = math.floor(math.log(y / x) / math.log(1.0001))
    depth = math.isqrt(x * y)  # the liquidity a full-range position of that TVL would have
    full_lo, full_hi = -(-MIN_TICK // spacing) * spacing, MAX_TICK // spacing * spacing

    positions = [(full_lo, full_hi, max(1, int(depth * rng.uniform(0.05, 0.3))))]
    for _ in range(rng.randint(2, 4)):  # concentrated positions around the price
        below = rng.randint(1, max(1, 3000 // spacing))
        above = rng.randint(1, max(1, 3000 // spacing))
        lower = (tick // spacing - below + 1) * spacing
        upper = (tick // spacing + above) * spacing
        positions.append((lower, upper, max(1, int(depth * rng.uniform(0.2, 1.5)))))
    gap = rng.randint(1, max(1, 2000 // spacing))  # one position out of range, above or below
    width = rng.randint(1, max(1, 2000 // spacing))
    if rng.random() < 0.5:
        lower = (tick // spacing + gap + 1) * spacing
        out_of_range = (lower, lower + width * spacing)
    else:
        upper = (tick // spacing - gap) * spacing
        out_of_range = (upper - width * spacing, upper)
    positions.append((*out_of_range, max(1, int(depth * rng.uniform(0.2, 1.0)))))

    net: dict[int, int] = {}
    gross: dict[int, int] = {}
    for lower, upper, liquidity in positions:
        net[lower] = net.get(lower, 0) + liquidity
        net[upper] = net.get(upper, 0) - liquidity
        gross[lower] = gross.get(lower, 0) + liquidity
        gross[upper] = gross.get(upper, 0) + liquidity
    in_range = sum(liq for lower, upper, liq in positions if lower <= tick < upper)
    return {
        "family": "uniswap_v3",
        **_base(token0, token1, rng),
        "fee": fee,
        "tick_spacing": spacing,
        "sqrt_price_x96": str(_sqrt_price_x96_inside(tick)),
        "tick": tick,
        "liquidity": str(in_range),
        "ticks": {
            str(t): {"liquidity_net": str(net[t]), "liquidity_gross": str(gross[t])}
            for t in sorted(net)
            if gross[t]
        },
    }


def _moved_v3(rng: random.Random, pool: dict[str, Any]) -> dict[str, Any]:
    """The pool moved 0.02% to 4% in price (log-uniform), kept inside its current range of
    initialized ticks (so its liquidity is unchanged)."""
    tick = int(pool["tick"])
    initialized = sorted(int(t) for t in pool["ticks"])
    lower = max((t for t in initialized if t <= tick), default=MIN_TICK)
    upper = min((t for t in initialized if t > tick), default=MAX_TICK)
    step = round(math.exp(rng.uniform(math.log(2), math.log(400)))) * rng.choice((-1, 1))
    new_tick = min(upper - 1, max(lower, tick + step))
    return {
        **pool,
        "block": int(pool["block"]) + 1,
        "tick": new_tick,
        "sqrt_price_x96": str(_sqrt_price_x96_inside(new_tick)),
    }
