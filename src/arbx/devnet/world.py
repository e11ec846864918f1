"""Build the devnet "world" on a fresh anvil: tokens, two V2 venues, Uniswap V3, pools, liquidity.

Everything comes from the real compiled artifacts: WETH9 (v2-periphery build), two
``UniswapV2Factory`` + ``UniswapV2Router02`` pairs ("uniswap_v2", and "sushiswap" standing in for
a fork), ``UniswapV3Factory`` (fee 100 enabled) with the NonfungiblePositionManager, SwapRouter
and QuoterV2, and ``UniswapInterfaceMulticall``. Tokens are our TestToken at realistic USD prices
(ETH at 3,000 USD); pools hold hundreds to thousands of WETH, V3 pools 10-30 positions over many
tick ranges. ``n_pools`` adds long-tail tokens with a few pools each against WETH.

Transactions go out in four batches (independent contracts; periphery and funding; pool creation;
liquidity), each sent without waiting and collected at once. The same seed on a fresh anvil gives
the same world, addresses included.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from eth_utils.address import to_checksum_address
from web3.contract import Contract

from arbx.devnet.artifacts import Artifact, load_artifact
from arbx.devnet.chain import DevChain, RawReceipt, TxQueue
from arbx.devnet.deploy import (
    MAX_UINT256,
    V2_INIT_CODE_HASH,
    V3_FEE_TICK_SPACING,
    V3_POOL_INIT_CODE_HASH,
    sort_tokens,
    v2_pair_address,
    v3_pool_address,
)
from arbx.devnet.deployment import (
    SEARCHER_ACCOUNT_INDEX,
    Accounts,
    Deployment,
    PoolRecord,
    TokenRecord,
    V3Periphery,
    VenueRecord,
    save_deployment,
)
from arbx.devnet.solc import compile_sources, contracts_dir
from arbx.domain.errors import ConfigError

ETH_USD = 3000.0
V2_VENUES = ("uniswap_v2", "sushiswap")
V3_VENUE = "uniswap_v3"
TRADER_ACCOUNTS = range(1, 6)  # anvil accounts 1..5; 0 deploys, 9 is the searcher's
ETH_BALANCE = 10**30  # wei given to the deployer and traders with anvil_setBalance
WETH_FUNDING = 10**27  # wei the deployer wraps
TOKEN_FUNDING = 1 << 160  # smallest units of each test token minted to the deployer
MIN_TICK, MAX_TICK = -887272, 887272
_DEADLINE = 2**40
_GAS = {"token": 2_500_000, "pair": 4_000_000, "pool": 7_000_000, "mint": 1_500_000}


@dataclass(frozen=True)
class TokenSpec:
    """A token to deploy: symbol, name, decimals and USD price."""

    symbol: str
    name: str
    decimals: int
    price_usd: float
    stable: bool = False


@dataclass(frozen=True)
class PairSpec:
    """A token pair: TVL in WETH on uniswap_v2 (sushiswap gets 30-60%) and per V3 fee tier."""

    a: str
    b: str
    v2_tvl: float
    v3: tuple[tuple[int, float], ...]


MAIN_TOKENS = (
    TokenSpec("USDC", "USD Coin", 6, 1.0, stable=True),
    TokenSpec("USDT", "Tether USD", 6, 1.0, stable=True),
    TokenSpec("WBTC", "Wrapped BTC", 8, 60_000.0),
    TokenSpec("DAI", "Dai Stablecoin", 18, 1.0, stable=True),
    TokenSpec("LINK", "ChainLink Token", 18, 15.0),
    TokenSpec("UNI", "Uniswap", 18, 8.0),
)
EXTRA_TOKENS = (
    TokenSpec("AAVE", "Aave Token", 18, 95.0),
    TokenSpec("MKR", "Maker", 18, 1500.0),
    TokenSpec("CRV", "Curve DAO Token", 18, 0.5),
    TokenSpec("LDO", "Lido DAO Token", 18, 2.0),
    TokenSpec("SNX", "Synthetix Network Token", 18, 3.0),
    TokenSpec("COMP", "Compound", 18, 50.0),
    TokenSpec("GRT", "Graph Token", 18, 0.15),
    TokenSpec("PEPE", "Pepe", 18, 0.00001),
    TokenSpec("EURC", "Euro Coin", 6, 1.08),
    TokenSpec("cbBTC", "Coinbase Wrapped BTC", 8, 60_000.0),
)
MAIN_PAIRS = (
    PairSpec("WETH", "USDC", 4000, ((500, 6000), (3000, 1500), (10000, 150))),
    PairSpec("WETH", "USDT", 2000, ((500, 2500), (3000, 800), (10000, 100))),
    PairSpec("WETH", "WBTC", 3000, ((500, 2000), (3000, 3000))),
    PairSpec("WETH", "DAI", 1500, ((100, 300), (500, 800), (3000, 400))),
    PairSpec("WETH", "LINK", 800, ((3000, 600), (10000, 150))),
    PairSpec("WETH", "UNI", 600, ((3000, 500), (10000, 100))),
    PairSpec("USDC", "USDT", 600, ((100, 1500), (500, 300))),
    PairSpec("USDC", "DAI", 400, ((100, 800), (500, 100))),
    PairSpec("WBTC", "USDC", 500, ((500, 400), (3000, 600))),
)
WETH_SPEC = TokenSpec("WETH", "Wrapped Ether", 18, ETH_USD)


@dataclass(frozen=True)
class WorldOptions:
    """What to build: the seed, extra listed tokens, total pool count and positions per pool."""

    seed: int = 0
    extra_tokens: int = 0
    n_pools: int | None = None
    positions: tuple[int, int] = (10, 30)
    long_tail_positions: tuple[int, int] = (2, 4)


@dataclass(frozen=True)
class _PoolPlan:
    venue: str
    a: str  # symbols
    b: str
    fee: int  # hundredths of a bip; 3000 for V2
    tvl: float  # WETH
    positions: int  # V3 only

    def __post_init__(self) -> None:
        object.__setattr__(self, "tvl", round(float(self.tvl), 2))


@cache
def test_token_artifact() -> Artifact:
    """TestToken, compiled on its own from ``contracts/test/TestToken.sol`` (cached)."""
    path = contracts_dir() / "test" / "TestToken.sol"
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    return compile_sources({"test/TestToken.sol": source})["TestToken"]


# --- price and range math (floats: these only choose desired amounts) --------------------------


def raw_price(spec0: TokenSpec, spec1: TokenSpec) -> float:
    """Smallest units of token1 per smallest unit of token0 at the listed USD prices."""
    return spec0.price_usd / spec1.price_usd * 10.0 ** (spec1.decimals - spec0.decimals)


def price_to_tick(price: float) -> int:
    """The tick whose price is at or just below ``price`` (token1 per token0, smallest units)."""
    return math.floor(math.log(price) / math.log(1.0001))


def sqrt_price_x96(price: float) -> int:
    """``sqrt(price) * 2**96`` as an integer, for pool initialisation."""
    return int(math.sqrt(price) * 2**96)


def usable_ticks(spacing: int) -> tuple[int, int]:
    """The lowest and highest ticks a position with this spacing can use."""
    return -(-MIN_TICK // spacing) * spacing, (MAX_TICK // spacing) * spacing


def align_range(lower: float, upper: float, spacing: int) -> tuple[int, int]:
    """Round a range outwards to the spacing, at least one spacing wide, inside the usable ticks."""
    low, high = usable_ticks(spacing)
    tick_lower = max(low, math.floor(lower / spacing) * spacing)
    tick_upper = min(high, math.ceil(upper / spacing) * spacing)
    if tick_upper <= tick_lower:
        tick_upper = tick_lower + spacing if tick_lower + spacing <= high else high
        tick_lower = tick_upper - spacing
    return tick_lower, tick_upper


def amounts_for_budget(price: float, lower: int, upper: int, budget1: float) -> tuple[int, int]:
    """Desired amounts (token0, token1) for a position worth ``budget1`` units of token1."""
    s, sa, sb = math.sqrt(price), 1.0001 ** (lower / 2), 1.0001 ** (upper / 2)
    if s <= sa:
        unit0, unit1 = 1 / sa - 1 / sb, 0.0
    elif s >= sb:
        unit0, unit1 = 0.0, sb - sa
    else:
        unit0, unit1 = 1 / s - 1 / sb, s - sa
    liquidity = budget1 / (unit0 * price + unit1)
    amount0 = math.ceil(unit0 * liquidity * 1.0001) + 1 if unit0 > 0 else 0
    amount1 = math.ceil(unit1 * liquidity * 1.0001) + 1 if unit1 > 0 else 0
    return amount0, amount1


def position_ranges(
    rng: random.Random, tick: int, spacing: int, count: int, *, stable: bool = False
) -> list[tuple[int, int, float]]:
    """``count`` ranges ``(lower, upper, budget share)``: one full range, wide, concentrated
    around ``tick`` and a few one-sided ones out of range; shares add up to 1."""
    scale = 0.08 if stable else 1.0
    low, high = usable_ticks(spacing)
    ranges: list[tuple[int, int, float]] = []
    for _ in range(count - 1):
        kind = rng.random()
        if kind < 0.2:  # wide: +-15% .. +-100%
            half = rng.uniform(1400, 7000) * scale
            center = tick + rng.uniform(-0.2, 0.2) * half
        elif kind < 0.85:  # concentrated: +-0.3% .. +-16%
            half = math.exp(rng.uniform(math.log(30), math.log(1500))) * scale
            center = tick + rng.uniform(-0.6, 0.6) * half
        else:  # one-sided, just above or below the price
            half = rng.uniform(50, 1000) * scale
            center = tick + rng.choice((-1, 1)) * (half + spacing + rng.uniform(0, 1500) * scale)
        lower, upper = align_range(center - half, center + half, spacing)
        ranges.append((lower, upper, rng.lognormvariate(0, 0.8)))
    total = sum(weight for _, _, weight in ranges) or 1.0
    shares = [(lo, up, 0.75 * w / total) for lo, up, w in ranges]
    return [(low, high, 0.25 if shares else 1.0), *shares]


# --- the plan ------------------------------------------------------------------------------------


def _plan(opts: WorldOptions, rng: random.Random) -> tuple[list[TokenSpec], list[_PoolPlan]]:
    """Tokens and pools to build, in a fixed order given the seed."""
    if opts.extra_tokens > len(EXTRA_TOKENS):
        raise ConfigError(f"at most {len(EXTRA_TOKENS)} extra listed tokens")
    tokens = [*MAIN_TOKENS, *EXTRA_TOKENS[: opts.extra_tokens]]
    pairs = [*MAIN_PAIRS]
    pairs += [PairSpec("WETH", t.symbol, 300, ((3000, 300),)) for t in tokens[len(MAIN_TOKENS) :]]
    pools: list[_PoolPlan] = []
    low, high = opts.positions
    for pair in pairs:
        tvl = pair.v2_tvl * rng.lognormvariate(0, 0.15)
        pools.append(_PoolPlan(V2_VENUES[0], pair.a, pair.b, 3000, tvl, 0))
        pools.append(_PoolPlan(V2_VENUES[1], pair.a, pair.b, 3000, tvl * rng.uniform(0.3, 0.6), 0))
        for fee, v3_tvl in pair.v3:
            count = rng.randint(low, high)
            pools.append(_PoolPlan(V3_VENUE, pair.a, pair.b, fee, v3_tvl, count))
    index = 0
    while opts.n_pools is not None and len(pools) < opts.n_pools:
        index += 1
        spec = TokenSpec(
            f"LT{index:04d}",
            f"Long Tail {index}",
            rng.choice((18, 18, 18, 18, 6, 8, 9, 12)),
            math.exp(rng.uniform(math.log(0.001), math.log(200))),
        )
        tokens.append(spec)
        tvl = 40 * rng.lognormvariate(0, 0.8)
        low, high = opts.long_tail_positions
        candidates = [
            _PoolPlan(V2_VENUES[0], "WETH", spec.symbol, 3000, tvl, 0),
            _PoolPlan(V2_VENUES[1], "WETH", spec.symbol, 3000, tvl * rng.uniform(0.2, 0.6), 0),
            _PoolPlan(V3_VENUE, "WETH", spec.symbol, 3000, tvl * 1.5, rng.randint(low, high)),
            _PoolPlan(V3_VENUE, "WETH", spec.symbol, 10000, tvl * 0.5, rng.randint(low, high)),
        ]
        pools += candidates[: opts.n_pools - len(pools)]
    return tokens, pools


# --- the build -----------------------------------------------------------------------------------


def build_world(
    url: str,
    options: WorldOptions | None = None,
    *,
    file: Path | None = None,
    block_time: float | None = None,
    anvil_pid: int | None = None,
) -> Deployment:
    """Deploy the whole world on the (fresh) node at ``url``; write ``file`` if given.

    Automine is switched off while building, so each batch becomes a few blocks rather than one
    block per transaction (anvil keeps a copy of the state per block).
    """
    opts = options if options is not None else WorldOptions()
    chain = DevChain(url)
    if len(chain.accounts) <= SEARCHER_ACCOUNT_INDEX:
        raise ConfigError(f"the node has {len(chain.accounts)} dev accounts; the devnet needs 10")
    automine = chain.rpc("anvil_getAutomine") is True
    if automine:
        chain.rpc("evm_setAutomine", False)
    try:
        deployment = _build(url, chain, opts, block_time, anvil_pid)
    finally:
        if automine:
            chain.rpc("evm_setAutomine", True)
    if file is not None:
        save_deployment(deployment, file)
    return deployment


def _build(
    url: str, chain: DevChain, opts: WorldOptions, block_time: float | None, anvil_pid: int | None
) -> Deployment:
    """Send the four batches and describe what they made."""
    rng = random.Random(f"arbx-world:{opts.seed}")
    deployer = chain.accounts[0]
    mine = True  # automine is off (or blocks come by interval): mine each batch ourselves
    chain.rpc("anvil_setBalance", deployer, hex(ETH_BALANCE))
    queue = TxQueue(chain)
    specs, plans = _plan(opts, rng)

    # 1. contracts that depend on nothing
    test_token = test_token_artifact()
    at = [queue.deploy(deployer, load_artifact("WETH9"))]
    at += [queue.deploy(deployer, load_artifact("UniswapV2Factory"), deployer) for _ in V2_VENUES]
    at += [queue.deploy(deployer, load_artifact("UniswapV3Factory"))]
    at += [queue.deploy(deployer, load_artifact("UniswapInterfaceMulticall"))]
    for spec in specs:
        at.append(
            queue.deploy(
                deployer, test_token, spec.name, spec.symbol, spec.decimals, gas=_GAS["token"]
            )
        )
    weth, v2_a, v2_b, v3_factory, multicall, *token_addresses = _created(queue.flush(mine=mine), at)
    address = {"WETH": weth} | {s.symbol: a for s, a in zip(specs, token_addresses, strict=True)}
    by_symbol = {"WETH": WETH_SPEC} | {s.symbol: s for s in specs}
    v2_factories = (v2_a, v2_b)

    # 2. periphery, fee tier 100, the deployer's WETH and tokens
    zero = "0x" + "00" * 20
    at = [queue.deploy(deployer, load_artifact("UniswapV2Router02"), f, weth) for f in v2_factories]
    at.append(
        queue.deploy(deployer, load_artifact("NonfungiblePositionManager"), v3_factory, weth, zero)
    )
    at.append(queue.deploy(deployer, load_artifact("SwapRouter"), v3_factory, weth))
    at.append(queue.deploy(deployer, load_artifact("QuoterV2"), v3_factory, weth))
    factory3 = chain.contract(load_artifact("UniswapV3Factory"), v3_factory)
    queue.call(deployer, factory3.functions.enableFeeAmount(100, V3_FEE_TICK_SPACING[100]))
    queue.raw(deployer, weth, _weth(chain).encode_abi("deposit"), WETH_FUNDING, 0, "deposit")
    template = chain.contract(test_token, weth)  # approve/transfer encode as WETH9's do
    for token in token_addresses:
        data = template.encode_abi("mint", args=[deployer, TOKEN_FUNDING])
        queue.raw(deployer, token, data, 0, 0, "mint")
    router_a, router_b, npm, swap_router, quoter = _created(queue.flush(mine=mine), at)

    # 3. approvals to the position manager; pairs and pools created at the listed prices
    for token in (weth, *token_addresses):
        queue.raw(
            deployer,
            token,
            template.encode_abi("approve", args=[npm, MAX_UINT256]),
            0,
            0,
            "approve",
        )
    factory2 = chain.contract(load_artifact("UniswapV2Factory"), v2_a)
    manager = chain.contract(load_artifact("NonfungiblePositionManager"), npm)
    records: list[PoolRecord] = []
    for plan in plans:
        token0, token1 = sort_tokens(address[plan.a], address[plan.b])
        spec0, spec1 = (by_symbol[plan.a], by_symbol[plan.b])
        if token0 != address[plan.a]:
            spec0, spec1 = spec1, spec0
        if plan.venue in V2_VENUES:
            factory = v2_factories[V2_VENUES.index(plan.venue)]
            data = factory2.encode_abi("createPair", args=[token0, token1])
            queue.raw(deployer, factory, data, 0, _GAS["pair"], "createPair")
            pool = v2_pair_address(factory, token0, token1)
            records.append(
                PoolRecord(pool, plan.venue, "uniswap_v2", token0, token1, 3000, 0, plan.tvl)
            )
        else:
            sqrt_x96 = sqrt_price_x96(raw_price(spec0, spec1))
            fn = manager.functions.createAndInitializePoolIfNecessary(
                token0, token1, plan.fee, sqrt_x96
            )
            queue.call(deployer, fn, gas=_GAS["pool"])
            pool = v3_pool_address(v3_factory, token0, token1, plan.fee)
            spacing = V3_FEE_TICK_SPACING[plan.fee]
            records.append(
                PoolRecord(
                    pool, V3_VENUE, "uniswap_v3", token0, token1, plan.fee, spacing, plan.tvl
                )
            )
    queue.flush(mine=mine)

    # 4. liquidity: V2 by sending both tokens to the pair and minting; V3 positions through NPM
    pair_template = chain.contract(load_artifact("UniswapV2Pair"), weth)
    spec_at = {address[symbol]: spec for symbol, spec in by_symbol.items()}
    for plan, record in zip(plans, records, strict=True):
        spec0, spec1 = spec_at[record.token0], spec_at[record.token1]
        if record.kind == "uniswap_v2":
            for spec, token in ((spec0, record.token0), (spec1, record.token1)):
                amount = int(plan.tvl / 2 * ETH_USD / spec.price_usd * 10**spec.decimals)
                fn_name = "transfer" if token == weth else "mint"
                data = template.encode_abi(fn_name, args=[record.address, amount])
                queue.raw(deployer, token, data, 0, 0, fn_name)
            data = pair_template.encode_abi("mint", args=[deployer])
            queue.raw(deployer, record.address, data, 0, 0, "pair.mint")
            continue
        price = raw_price(spec0, spec1)
        unit1_weth = spec1.price_usd / ETH_USD / 10**spec1.decimals
        ranges = position_ranges(
            rng, price_to_tick(price), record.tick_spacing, plan.positions,
            stable=spec0.stable and spec1.stable,
        )  # fmt: skip
        for lower, upper, share in ranges:
            amount0, amount1 = amounts_for_budget(
                price, lower, upper, plan.tvl * share / unit1_weth
            )
            params = (
                record.token0, record.token1, record.fee, lower, upper,
                amount0, amount1, 0, 0, deployer, _DEADLINE,
            )  # fmt: skip
            queue.call(deployer, manager.functions.mint(params), gas=_GAS["mint"])
    queue.flush(mine=mine)

    return Deployment(
        chain_id=chain.w3.eth.chain_id,
        rpc_url=url,
        ws_url="ws" + url.removeprefix("http") if url.startswith("http") else url,
        start_block=chain.w3.eth.block_number,
        seed=opts.seed,
        eth_usd=ETH_USD,
        weth=weth,
        multicall=multicall,
        tokens=tuple(
            TokenRecord(s.symbol, s.name, address[s.symbol], s.decimals, s.price_usd) for s in specs
        ),
        venues=(
            *(
                VenueRecord(name, "uniswap_v2", f, r, "0x" + V2_INIT_CODE_HASH.hex(), 30)
                for name, f, r in zip(V2_VENUES, v2_factories, (router_a, router_b), strict=True)
            ),
            VenueRecord(
                V3_VENUE,
                "uniswap_v3",
                v3_factory,
                swap_router,
                "0x" + V3_POOL_INIT_CODE_HASH.hex(),
                None,
            ),
        ),
        v3=V3Periphery(position_manager=npm, swap_router=swap_router, quoter=quoter),
        pools=tuple(records),
        accounts=Accounts(
            deployer=deployer,
            traders=tuple(chain.accounts[i] for i in TRADER_ACCOUNTS),
            searcher=chain.accounts[SEARCHER_ACCOUNT_INDEX],
        ),
        block_time=block_time,
        anvil_pid=anvil_pid,
    )


def _created(receipts: list[RawReceipt], indices: list[int]) -> list[str]:
    """The contract addresses created by the receipts at ``indices``."""
    return [to_checksum_address(receipts[i]["contractAddress"]) for i in indices]


def _weth(chain: DevChain) -> Contract:
    return chain.contract(load_artifact("WETH9"), "0x" + "00" * 20)
