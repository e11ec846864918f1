"""A seeded, mainnet-shaped universe of pools and the blocks of swaps that move it.

Pure code: the same seed gives the same pools, the same blocks and the same events. Nothing here
is chain data except WETH's address; the shape follows the real states in
``tests/fixtures/mainnet``, and every parameter below says where it comes from.

Tokens (``TIERS``):

- hubs: WETH, USDC, USDT, DAI, WBTC. Every hub pair has a pool on both V2 venues and at every V3
  fee tier (100/500/3000/10000), as on mainnet.
- mid caps (LINK, UNI, AAVE...): each paired with WETH on most venues and tiers, and with one or
  two of the stablecoins.
- pegged tokens (liquid staking, other stablecoins) against WETH or a stablecoin at the 0.01%
  and 0.05% tiers, where those tiers hold most of their pools on mainnet.
- a long tail: tokens with one to three pools, mostly V2 against WETH (on mainnet most pairs are
  V2 pairs of a small token against WETH), sometimes a V3 1% or 0.3% pool, sometimes a pool
  against a stablecoin.

V2 reserves: a value locked drawn log-normally (in WETH), split at the token's list price, each
pool's price within half its fee of it (the fixtures' pairs hold 146, 2,571 and 60,384 WETH:
``TVL_WETH`` spans that). V3 pools are built from positions, as the chain builds them: the
in-range liquidity is the sum of the positions around the price and every initialized tick is a
position's edge, so ``liquidity_net`` always adds up. Measured on the fixtures' WBTC/WETH 0.3%
pool (blocks 17,600,000 and 24,407,242): 238 and 458 initialized ticks, every tick spacing next to
the price initialized, half the ticks within 4,000 to 7,700 ticks of the price, and
``log10(|liquidity_net| / liquidity)`` about normal with mean -3.3 and deviation 1.3
(``V3_NET_LOG10``); the biggest pools here have that many ticks, long-tail pools a handful, and
one pool in two holds a full-range position (the 24,407,242 state has one).

Blocks: 50 to 150 pools touched (``TOUCHED``), drawn with weights that favour hub pairs (on
mainnet the WETH/stablecoin pools trade in nearly every block) over mid caps and the long tail.
Each touched pool takes one exact swap (V2: ``getAmountOut``; V3: the exact swap loop, which may
cross ticks) and emits what the contract emits (V2 ``Sync``, V3 ``Swap``): a user's trade of a
size log-uniform over orders of magnitude of its depth, or, for a pool an earlier trade pushed
out of its no-arbitrage band, the back-run that another searcher sends to bring it back. So the
universe stays near equilibrium over hundreds of blocks, and the opportunities are what each
block's trades open, as on mainnet.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, localcontext

from eth_utils.address import to_checksum_address

from arbx.domain.amm.tick_math import (
    MAX_SQRT_RATIO,
    MAX_TICK,
    MIN_SQRT_RATIO,
    MIN_TICK,
    get_sqrt_ratio_at_tick,
)
from arbx.domain.events import LoggedEvent, V2Sync, V3Swap, apply
from arbx.domain.pools import Pool, Token, V2Pool, V3Pool
from bench.fixtures import WETH as WETH  # noqa: PLC0414 (re-exported)

CHAIN_ID = 1
FIRST_BLOCK = 21_000_000
V3_TICK_SPACING = {100: 1, 500: 10, 3000: 60, 10000: 200}
V2_VENUES = 2  # Uniswap V2 and SushiSwap: 30 bps each

# symbol, decimals, price in WETH of one whole token (rough 2026 levels; only ratios matter)
HUBS: tuple[tuple[str, int, float], ...] = (
    ("USDC", 6, 1 / 3000),
    ("USDT", 6, 1 / 3000),
    ("DAI", 18, 1 / 3000),
    ("WBTC", 8, 30.0),
)
STABLES = ("USDC", "USDT", "DAI")
MID_CAPS = 40  # tokens paired on most venues: LINK, UNI, AAVE, MKR, LDO, PEPE, ...
PEGGED = 16  # half pegged to ETH (stETH, rETH, cbETH...), half to the dollar (FRAX, LUSD...)

# value locked of a pool in WETH: log-normal, median by the tiers of its tokens, sigma 1.2
TVL_WETH = {"hub": 6_000.0, "mid": 500.0, "tail": 40.0}
TVL_SIGMA = 1.2
# positions in a V3 pool (each adds up to two initialized ticks), by the tiers of its tokens
V3_POSITIONS = {"hub": (120, 230), "mid": (20, 80), "tail": (2, 12)}
# distance in ticks from the price to a position's centre: scale of a Laplace law per fee tier
V3_CENTRE_SCALE = {100: 30, 500: 1_500, 3000: 4_000, 10000: 9_000}
V3_NET_LOG10 = (-3.3, 1.3)  # log10(position liquidity / pool liquidity): the fixtures' law
FULL_RANGE_SHARE = 0.5  # pools holding a full-range position

TOUCHED = (50, 150)  # pools touched per block
TOUCH_WEIGHT = {"hub": 40.0, "mid": 6.0, "tail": 1.0}
CLOSE_CHANCE = 0.85  # chance per block that a pool out of its band is brought back by a back-run
# a user's swap, worth log-normally this many WETH (median 0.5 WETH, one in a hundred above
# 16), capped at a share of the pool's value: so a hub pool barely moves and a long-tail pool
# may move by several times its fee
SWAP_WETH = (0.5, 1.5)
SWAP_MAX_SHARE = 0.05


@dataclass(frozen=True, slots=True)
class TokenModel:
    """A token of the universe: its address, decimals, list price in WETH and tier."""

    address: str
    symbol: str | None
    decimals: int
    price: float  # WETH per whole token
    tier: str  # hub, mid or tail

    def token(self) -> Token:
        """The domain's token."""
        return Token(self.address, self.symbol, self.decimals)


@dataclass(slots=True)
class Universe:
    """The pools at ``FIRST_BLOCK``, their tokens and each pool's tier and list price."""

    seed: int
    pools: list[Pool]
    tokens: list[TokenModel]
    tier: dict[str, str] = field(default_factory=dict)  # pool -> tier of its smaller token
    list_price: dict[str, float] = field(default_factory=dict)  # pool -> token1 per token0, raw
    value: dict[str, float] = field(default_factory=dict)  # pool -> value locked at start, WETH

    def describe(self) -> str:
        """One line: what is in it."""
        n_v2 = sum(isinstance(p, V2Pool) for p in self.pools)
        fees: dict[int, int] = {}
        for p in self.pools:
            if isinstance(p, V3Pool):
                fees[p.fee] = fees.get(p.fee, 0) + 1
        ticks = sum(len(p.ticks) for p in self.pools if isinstance(p, V3Pool))
        tiers = {t: sum(m.tier == t for m in self.tokens) for t in TVL_WETH}
        return (
            f"{len(self.pools)} pools ({n_v2} V2, {len(self.pools) - n_v2} V3: "
            + ", ".join(f"{fees.get(f, 0)} at {f}" for f in V3_TICK_SPACING)
            + f"; {ticks} initialized ticks) over {len(self.tokens)} tokens "
            f"({tiers['hub']} hubs, {tiers['mid']} mid caps, {tiers['tail']} long tail); "
            f"seed {self.seed}. Synthetic, shaped like tests/fixtures/mainnet."
        )


def generate(n_pools: int = 10_000, seed: int = 1) -> Universe:
    """A universe of ``n_pools`` pools."""
    rng = random.Random(seed)
    weth = TokenModel(WETH, "WETH", 18, 1.0, "hub")
    hubs = [weth] + [TokenModel(_address(rng), s, d, p, "hub") for s, d, p in HUBS]
    by_symbol = {t.symbol: t for t in hubs}
    stables = [by_symbol[s] for s in STABLES]
    universe = Universe(seed, [], list(hubs))

    def add(a: TokenModel, b: TokenModel, fee: int | None) -> None:
        if len(universe.pools) >= n_pools:
            return
        tiers = (a.tier, b.tier)
        tier = "tail" if "tail" in tiers else "mid" if "mid" in tiers else "hub"
        token0, token1 = (a, b) if int(a.address, 16) < int(b.address, 16) else (b, a)
        price = token0.price / token1.price * 10 ** (token1.decimals - token0.decimals)
        fee_share = 0.003 if fee is None else fee / 1_000_000
        price *= math.exp(rng.uniform(-fee_share / 2, fee_share / 2))
        tvl = math.exp(rng.gauss(math.log(TVL_WETH[tier]), TVL_SIGMA))
        if fee is None:
            pool: Pool = _v2_pool(rng, token0, token1, price, tvl)
        else:
            pool = _v3_pool(rng, token0, token1, price, tvl, fee, tier)
        universe.pools.append(pool)
        universe.tier[pool.address] = tier
        universe.value[pool.address] = tvl
        universe.list_price[pool.address] = (
            token0.price / token1.price * 10 ** (token1.decimals - token0.decimals)
        )

    for i, a in enumerate(hubs):
        for b in hubs[i + 1 :]:
            for _ in range(V2_VENUES):
                add(a, b, None)
            for fee in V3_TICK_SPACING:
                add(a, b, fee)
    for _ in range(MID_CAPS):
        mid = _token(rng, "mid", (0.05, 1e-8))
        universe.tokens.append(mid)
        for _ in range(V2_VENUES):
            add(mid, weth, None)
        for fee in (500, 3000, 10000):
            if rng.random() < 0.8:
                add(mid, weth, fee)
        for stable in rng.sample(stables, rng.randint(1, 2)):
            add(mid, stable, rng.choice((None, 3000, 500)))
        if rng.random() < 0.3:
            add(mid, by_symbol["WBTC"], 3000)
    for i in range(PEGGED):  # where the 0.01% and 0.05% tiers are: pegged pairs
        to_eth = i % 2 == 0
        anchor = weth if to_eth else stables[i % 4 // 2]
        pegged = TokenModel(_address(rng), None, 18, anchor.price * rng.uniform(0.97, 1.1), "mid")
        universe.tokens.append(pegged)
        for fee in (100, 500):
            add(pegged, anchor, fee)
        if rng.random() < 0.5:
            add(pegged, anchor, None)
        if not to_eth:
            add(pegged, stables[2], 100)
    while len(universe.pools) < n_pools:
        tail = _token(rng, "tail", (0.5, 1e-11))
        universe.tokens.append(tail)
        add(tail, weth, None if rng.random() < 0.75 else rng.choice((3000, 10000, 10000)))
        if rng.random() < 0.35:
            add(tail, weth, rng.choice((None, 3000, 10000)))
        if rng.random() < 0.2:
            add(tail, rng.choice(stables[:2]), rng.choice((None, 3000, 10000)))
        if rng.random() < 0.05:
            add(tail, rng.choice(universe.tokens[len(hubs) : len(hubs) + MID_CAPS]), None)
    return universe


def blocks(universe: Universe, n_blocks: int, seed: int = 2) -> Iterator[list[LoggedEvent]]:
    """The events of ``n_blocks`` blocks after ``FIRST_BLOCK``, one list per block, in log
    order. The universe's pools are not changed (the states are followed on a copy).

    Each block first closes, each with chance ``CLOSE_CHANCE``, the pools that earlier blocks
    pushed out of their no-arbitrage band (another searcher's back-run: a swap to a price
    within half the fee of the list price), then users trade on the other touched pools.
    """
    rng = random.Random(seed)
    states: dict[str, Pool] = {p.address: p for p in universe.pools}
    addresses = list(states)
    weights = [TOUCH_WEIGHT[universe.tier[a]] for a in addresses]
    displaced: dict[str, None] = {}  # pools outside their band, oldest first
    for offset in range(1, n_blocks + 1):
        number = FIRST_BLOCK + offset
        n_touched = min(rng.randint(*TOUCHED), len(addresses))
        closing = [a for a in displaced if rng.random() < CLOSE_CHANCE][:n_touched]
        touched = dict.fromkeys(closing)
        while len(touched) < n_touched:
            touched.update(dict.fromkeys(rng.choices(addresses, weights, k=n_touched)))
        events = []
        for log_index, address in enumerate(list(touched)[:n_touched]):
            pool, target = states[address], universe.list_price[address]
            if address in displaced and address in closing:
                event = _close(rng, pool, target)
            else:
                event = _trade(rng, pool, universe.value[address])
            if event is None:
                continue
            states[address] = moved = apply(pool, event, number)
            displaced.pop(address, None)
            if abs(math.log(_price(moved) / target)) > _fee_share(moved):
                displaced[address] = None
            events.append(LoggedEvent(number, block_hash(number), log_index, address, event))
        yield events


def block_hash(number: int) -> str:
    """A stable hash for block ``number`` of the synthetic chain."""
    return f"0x{number:064x}"


# -- tokens -----------------------------------------------------------------------------------


def _address(rng: random.Random) -> str:
    return str(to_checksum_address(f"0x{rng.getrandbits(160):040x}"))


def _token(rng: random.Random, tier: str, prices: tuple[float, float]) -> TokenModel:
    decimals = rng.choice((18, 18, 18, 18, 18, 9, 8, 6))
    high, low = prices
    price = math.exp(rng.uniform(math.log(low), math.log(high)))
    return TokenModel(_address(rng), None, decimals, price, tier)


# -- pools ------------------------------------------------------------------------------------


def _v2_pool(
    rng: random.Random, token0: TokenModel, token1: TokenModel, price: float, tvl: float
) -> V2Pool:
    reserve0 = max(10**4, int(tvl / 2 / token0.price * 10**token0.decimals))
    reserve1 = max(10**4, int(reserve0 * price))
    return V2Pool(
        _address(rng), token0.token(), token1.token(), reserve0, reserve1, 30, CHAIN_ID, FIRST_BLOCK
    )


def sqrt_price_inside(tick: int) -> int:
    """A sqrt price half way through ``tick`` (so TickMath.getTickAtSqrtRatio gives ``tick``)."""
    with localcontext() as ctx:
        ctx.prec = 80
        return int(Decimal("1.0001") ** (Decimal(2 * tick + 1) / 4) * (Decimal(2) ** 96))


def _v3_pool(
    rng: random.Random,
    token0: TokenModel,
    token1: TokenModel,
    price: float,
    tvl: float,
    fee: int,
    tier: str,
) -> V3Pool:
    spacing = V3_TICK_SPACING[fee]
    tick = max(MIN_TICK + 1, min(MAX_TICK - 1, math.floor(math.log(price) / math.log(1.0001))))
    x = tvl / 2 / token0.price * 10**token0.decimals
    depth = max(10**6, int(math.sqrt(x * x * price)))  # full-range liquidity of that value
    lo_edge, hi_edge = -(MAX_TICK // spacing) * spacing, MAX_TICK // spacing * spacing
    scale = V3_CENTRE_SCALE[fee]
    mean, sigma = V3_NET_LOG10
    positions: list[tuple[int, int, float]] = []
    if rng.random() < FULL_RANGE_SHARE:
        positions.append((lo_edge, hi_edge, 10 ** rng.gauss(mean + 1.5, 0.5)))
    for _ in range(rng.randint(*V3_POSITIONS[tier])):
        centre = tick + int(rng.expovariate(1 / scale)) * rng.choice((-1, 1))
        half = max(1, int(math.exp(rng.uniform(0, math.log(max(2, 2 * scale // spacing))))))
        lower = max(lo_edge, (centre // spacing - half) * spacing)
        upper = min(hi_edge, (centre // spacing + half) * spacing)
        if lower < upper:
            positions.append((lower, upper, 10 ** rng.gauss(mean, sigma)))
    if not any(lo <= tick < hi for lo, hi, _ in positions):  # someone provides at the price
        positions.append(((tick // spacing) * spacing, (tick // spacing + 1) * spacing, 0.1))
    in_range = sum(share for lo, hi, share in positions if lo <= tick < hi)
    net: dict[int, int] = {}
    gross: dict[int, int] = {}
    liquidity = 0
    for lower, upper, share in positions:
        amount = max(1, int(depth * share / in_range))
        net[lower] = net.get(lower, 0) + amount
        net[upper] = net.get(upper, 0) - amount
        gross[lower] = gross.get(lower, 0) + amount
        gross[upper] = gross.get(upper, 0) + amount
        if lower <= tick < upper:
            liquidity += amount
    ticks = tuple(sorted(net))
    return V3Pool(
        _address(rng),
        token0.token(),
        token1.token(),
        fee,
        spacing,
        sqrt_price_inside(tick),
        tick,
        liquidity,
        ticks,
        net,
        gross,
        CHAIN_ID,
        FIRST_BLOCK,
    )


# -- swaps ------------------------------------------------------------------------------------


def _fee_share(pool: Pool) -> float:
    return pool.fee_bps / 10_000 if isinstance(pool, V2Pool) else pool.fee / 1_000_000


def _price(pool: Pool) -> float:
    """token1 per token0, in smallest units."""
    if isinstance(pool, V2Pool):
        return pool.reserve1 / pool.reserve0
    return (pool.sqrt_price_x96 / 2**96) ** 2


def _trade(rng: random.Random, pool: Pool, value: float) -> V2Sync | V3Swap | None:
    """A user's exact swap in a random direction, its size drawn by ``SWAP_WETH`` as a share
    of the pool's input reserve (virtual, in range, for V3); None if it cannot fill."""
    worth = math.exp(rng.gauss(math.log(SWAP_WETH[0]), SWAP_WETH[1]))
    share = min(SWAP_MAX_SHARE, worth / (value / 2))
    zero_for_one = rng.random() < 0.5
    if isinstance(pool, V2Pool):
        r_in, _ = pool.reserves(zero_for_one)
        return _v2_swap(pool, zero_for_one, max(1, int(r_in * share)))
    if pool.liquidity == 0:
        return None
    sqrt_p = pool.sqrt_price_x96 / 2**96
    virtual_in = pool.liquidity / sqrt_p if zero_for_one else pool.liquidity * sqrt_p
    return _v3_swap(pool, zero_for_one, max(1, int(virtual_in * share)), None)


def _close(rng: random.Random, pool: Pool, list_price: float) -> V2Sync | V3Swap | None:
    """A back-run: the swap that brings the pool to a price within half its fee of the list."""
    target = list_price * math.exp(rng.uniform(-0.5, 0.5) * _fee_share(pool))
    zero_for_one = _price(pool) > target  # selling token0 lowers the price
    if isinstance(pool, V2Pool):
        k = pool.reserve0 * pool.reserve1
        if zero_for_one:
            amount = math.isqrt(int(k / target)) - pool.reserve0
        else:
            amount = math.isqrt(int(k * target)) - pool.reserve1
        keep = 10_000 - pool.fee_bps
        return _v2_swap(pool, zero_for_one, max(1, amount * 10_000 // keep))
    return _v3_swap(pool, zero_for_one, 2**200, int(math.sqrt(target) * 2**96))


def _v2_swap(pool: V2Pool, zero_for_one: bool, amount_in: int) -> V2Sync | None:
    amount_out = pool.swap_exact_in(zero_for_one, amount_in).amount_out
    r_in, r_out = pool.reserves(zero_for_one)
    if amount_out <= 0 or amount_out >= r_out or r_in + amount_in >= 2**112:
        return None
    if zero_for_one:
        return V2Sync(pool.reserve0 + amount_in, pool.reserve1 - amount_out)
    return V2Sync(pool.reserve0 - amount_out, pool.reserve1 + amount_in)


def _v3_swap(pool: V3Pool, zero_for_one: bool, amount_in: int, limit: int | None) -> V3Swap | None:
    """The exact swap, kept inside the pool's initialized ticks (a real pool has liquidity
    beyond them only through its full-range positions, which these ticks include)."""
    edge = get_sqrt_ratio_at_tick(pool.ticks[0] if zero_for_one else pool.ticks[-1])
    if limit is None or (zero_for_one and limit < edge) or (not zero_for_one and limit > edge):
        limit = edge
    limit = max(MIN_SQRT_RATIO + 1, min(MAX_SQRT_RATIO - 1, limit))
    if (zero_for_one and limit >= pool.sqrt_price_x96) or (
        not zero_for_one and limit <= pool.sqrt_price_x96
    ):
        return None
    result = pool.swap(zero_for_one, amount_in, limit)
    if result.amount_in == 0:
        return None
    return V3Swap(result.sqrt_price_x96, result.liquidity, result.tick)


def pools_by_address(universe: Universe) -> Mapping[str, Pool]:
    """The universe's pools by address."""
    return {p.address: p for p in universe.pools}
