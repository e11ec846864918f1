"""degenbot 0.3.0, the Python reference, built offline from the same pool dicts as our side.

degenbot 0.3.0's constructors read everything over RPC: ``Erc20Token.__init__`` asks the chain
for name, symbol and decimals, ``UniswapV2Pool.__init__`` for factory, tokens and reserves,
``UniswapV3Pool.__init__`` for factory, tokens, fee, spacing, slot0 and liquidity (only the tick
maps can be passed in). There is no chain here, so each object is allocated with ``__new__`` and
given exactly the attributes its ``__init__`` sets after those reads. The real pools' addresses
are then checked by degenbot itself (CREATE2 from the factory, ``_verified_address``), and the
V3 pool is given its complete tick map, so degenbot runs its own non-sparse swap path.

Everything timed after construction is degenbot's own code: the pools' ``calculate_*`` methods,
``UniswapV3Pool._calculate_swap`` and ``UniswapLpCycle.calculate`` (SciPy's bounded Brent search).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from importlib.metadata import version
from threading import Lock
from typing import Any

from degenbot.arbitrage.uniswap_lp_cycle import UniswapLpCycle
from degenbot.erc20_token import Erc20Token
from degenbot.types import BoundedCache
from degenbot.uniswap.types import (
    UniswapV2PoolState,
    UniswapV3BitmapAtWord,
    UniswapV3LiquidityAtTick,
    UniswapV3PoolState,
)
from degenbot.uniswap.v2_liquidity_pool import UniswapV2Pool
from degenbot.uniswap.v3_functions import get_tick_word_and_bit_position
from degenbot.uniswap.v3_libraries.tick_math import (
    MAX_SQRT_RATIO,
    MAX_TICK,
    MIN_SQRT_RATIO,
    MIN_TICK,
)
from degenbot.uniswap.v3_liquidity_pool import UniswapV3Pool

VERSION = version("degenbot")

UNISWAP_V2_FACTORY = "0x5C69bEe701ef814a2B6a3EDD4B1652CB9cc5aA6f"
UNISWAP_V3_FACTORY = "0x1F98431c8aD98523631AE4a59f267346ea31F984"
STATE_CACHE_ITEMS = 128  # what degenbot's pool constructors use


class TokenBook:
    """One ``Erc20Token`` per address, shared by every pool (degenbot's token manager does this)."""

    def __init__(self) -> None:
        self._tokens: dict[str, Erc20Token] = {}

    def get(self, field: Mapping[str, Any], chain_id: int = 1) -> Erc20Token:
        """The token for a fixture ``token0``/``token1`` object, made on first use."""
        address = field["address"]
        if address not in self._tokens:
            token = Erc20Token.__new__(Erc20Token)
            token.address = address
            token.symbol = field.get("symbol") or Erc20Token.UNKNOWN_SYMBOL
            token.name = token.symbol
            token.decimals = field.get("decimals", Erc20Token.UNKNOWN_DECIMALS)
            token._chain_id = chain_id
            token._price_oracle = None
            token._cached_approval = {}
            token._cached_balance = {}
            token._cached_total_supply = BoundedCache(max_items=Erc20Token.MAX_CACHE_ITEMS)
            self._tokens[address] = token
        return self._tokens[address]


def v2_pool(pool: Mapping[str, Any], tokens: TokenBook, *, verify: bool = True) -> UniswapV2Pool:
    """A ``UniswapV2Pool`` at the fixture's reserves; ``verify`` checks the real pair address."""
    obj = UniswapV2Pool.__new__(UniswapV2Pool)
    obj.address = pool["address"]
    obj._chain_id = pool.get("chain_id", 1)
    obj._update_block = pool["block"]
    obj.factory = UNISWAP_V2_FACTORY
    obj.deployer = UNISWAP_V2_FACTORY
    obj.init_hash = UniswapV2Pool.UNISWAP_V2_MAINNET_POOL_INIT_HASH
    obj.token0 = tokens.get(pool["token0"], obj.chain_id)
    obj.token1 = tokens.get(pool["token1"], obj.chain_id)
    obj._state_lock = Lock()
    obj._state = UniswapV2PoolState(
        pool=obj.address,
        reserves_token0=int(pool["reserve0"]),
        reserves_token1=int(pool["reserve1"]),
    )
    obj.fee_token0 = obj.fee_token1 = Fraction(int(pool.get("fee_bps", 30)), 10_000)
    obj.name = f"{obj.token0}-{obj.token1} (UniswapV2Pool, {float(obj.fee_token0) * 100:.2f}%)"
    obj._state_cache = BoundedCache(max_items=STATE_CACHE_ITEMS)
    obj._state_cache[obj.update_block] = obj.state
    obj._subscribers = set()
    if verify and obj._verified_address() != obj.address:
        raise ValueError(f"{obj.address} is not the Uniswap V2 pair of its tokens")
    return obj


def v3_pool(pool: Mapping[str, Any], tokens: TokenBook, *, verify: bool = True) -> UniswapV3Pool:
    """A ``UniswapV3Pool`` with the fixture's slot0, liquidity and complete tick map."""
    obj = UniswapV3Pool.__new__(UniswapV3Pool)
    obj.address = pool["address"]
    obj._chain_id = pool.get("chain_id", 1)
    obj._update_block = pool["block"]
    obj.factory = UNISWAP_V3_FACTORY
    obj.deployer_address = UNISWAP_V3_FACTORY
    obj.init_hash = UniswapV3Pool.UNISWAP_V3_MAINNET_POOL_INIT_HASH
    obj.token0 = tokens.get(pool["token0"], obj.chain_id)
    obj.token1 = tokens.get(pool["token1"], obj.chain_id)
    obj.fee = int(pool["fee"])
    obj.tick_spacing = int(pool["tick_spacing"])
    obj._state_lock = Lock()
    obj._state = UniswapV3PoolState(
        pool=obj.address,
        liquidity=int(pool["liquidity"]),
        sqrt_price_x96=int(pool["sqrt_price_x96"]),
        tick=int(pool["tick"]),
        tick_bitmap=_tick_bitmap(pool),
        tick_data={
            int(t): UniswapV3LiquidityAtTick(
                liquidity_net=int(info["liquidity_net"]),
                liquidity_gross=int(info["liquidity_gross"]),
                block=pool["block"],
            )
            for t, info in pool["ticks"].items()
        },
    )
    obj.sparse_liquidity_map = False  # the map is complete: degenbot's fast path, no fetches
    obj.name = f"{obj.token0}-{obj.token1} (UniswapV3Pool, {obj.fee / 10000:.2f}%)"
    obj._state_cache = BoundedCache(max_items=STATE_CACHE_ITEMS)
    obj._state_cache[obj.update_block] = obj.state
    obj._subscribers = set()
    if verify and obj._verified_address() != obj.address:
        raise ValueError(f"{obj.address} is not the Uniswap V3 pool of its tokens and fee")
    return obj


def _tick_bitmap(pool: Mapping[str, Any]) -> dict[int, UniswapV3BitmapAtWord]:
    """Every word of the pool's tick bitmap, empty words included (as the constructor fills)."""
    spacing = int(pool["tick_spacing"])
    words: dict[int, int] = {}
    for tick in pool["ticks"]:
        word, bit = get_tick_word_and_bit_position(int(tick), spacing)
        words[word] = words.get(word, 0) | (1 << bit)
    first, _ = get_tick_word_and_bit_position(MIN_TICK, spacing)
    last, _ = get_tick_word_and_bit_position(MAX_TICK, spacing)
    return {
        word: UniswapV3BitmapAtWord(bitmap=words.get(word, 0), block=pool["block"])
        for word in range(first, last + 1)
    }


def lp_cycle(
    pools: Sequence[UniswapV2Pool | UniswapV3Pool], input_token: Erc20Token, max_input: int
) -> UniswapLpCycle:
    """degenbot's arbitrage helper over ``pools`` in order, starting and ending with the input."""
    return UniswapLpCycle(
        input_token=input_token, swap_pools=pools, id="bench", max_input=max_input
    )


def v3_swap(
    pool: UniswapV3Pool, zero_for_one: bool, amount_specified: int, sqrt_price_limit_x96: int | None
) -> tuple[int, int, int, int, int]:
    """degenbot's port of UniswapV3Pool.swap: (amount0, amount1, sqrt_price, liquidity, tick)."""
    if sqrt_price_limit_x96 is None:
        sqrt_price_limit_x96 = MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1
    return pool._calculate_swap(zero_for_one, amount_specified, sqrt_price_limit_x96)
