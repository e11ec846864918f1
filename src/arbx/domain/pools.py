"""Immutable pool states and exact swaps on them.

A pool is a frozen value: a swap answers what the pool would do without changing it. Pools are
keyed by address; tokens are compared by checksummed address. ``Hop`` is one directed use of a
pool inside a route.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from arbx.domain.amm import v2, v3
from arbx.domain.errors import InputError, MathError

UINT256_MAX = 2**256 - 1
INT256_MAX = 2**255 - 1
V3_FEE_TIERS: Mapping[int, int] = {100: 1, 500: 10, 3000: 60, 10000: 200}


@dataclass(frozen=True, slots=True)
class Token:
    """An ERC-20 token: checksummed address, and symbol and decimals where known."""

    address: str
    symbol: str | None = None
    decimals: int | None = None

    def label(self) -> str:
        """A short human name: the symbol, else the address."""
        return self.symbol or self.address


@dataclass(frozen=True, slots=True)
class Quote:
    """What one swap takes and gives; ``partial`` when a price limit stopped it early."""

    amount_in: int
    amount_out: int
    partial: bool = False


@dataclass(frozen=True, slots=True)
class V2Pool:
    """A Uniswap V2-style pair (or a fork with its own fee) at one block."""

    family: ClassVar[str] = "uniswap_v2"

    address: str
    token0: Token
    token1: Token
    reserve0: int
    reserve1: int
    fee_bps: int = 30
    chain_id: int = 1
    block: int | None = None
    fee_fraction: tuple[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fee_fraction", v2.fee_fraction(self.fee_bps))

    def reserves(self, zero_for_one: bool) -> tuple[int, int]:
        """(reserve of the input token, reserve of the output token) for a direction."""
        if zero_for_one:
            return self.reserve0, self.reserve1
        return self.reserve1, self.reserve0

    def curve(self, zero_for_one: bool) -> tuple[float, float]:
        """(a, c) of the constant-product map ``out = a*x / (1 + c*x)`` (floats, estimates only)."""
        r_in, r_out = self.reserves(zero_for_one)
        keep = (10_000 - self.fee_bps) / 10_000
        return keep * r_out / r_in, keep / r_in

    def swap_exact_in(self, zero_for_one: bool, amount_in: int) -> Quote:
        """UniswapV2Library.getAmountOut on this pair."""
        r_in, r_out = self.reserves(zero_for_one)
        return Quote(amount_in, v2.get_amount_out(amount_in, r_in, r_out, self.fee_bps))

    def swap_exact_out(self, zero_for_one: bool, amount_out: int) -> Quote:
        """UniswapV2Library.getAmountIn on this pair (the router's rounding)."""
        r_in, r_out = self.reserves(zero_for_one)
        if amount_out >= r_out:
            raise MathError(f"pool {self.address} holds only {r_out} of the output token")
        return Quote(v2.get_amount_in(amount_out, r_in, r_out, self.fee_bps), amount_out)


@dataclass(frozen=True, slots=True)
class V3Pool:
    """A Uniswap V3 pool: price, in-range liquidity and every initialized tick, at one block."""

    family: ClassVar[str] = "uniswap_v3"

    address: str
    token0: Token
    token1: Token
    fee: int
    tick_spacing: int
    sqrt_price_x96: int
    tick: int
    liquidity: int
    ticks: tuple[int, ...]
    liquidity_net: Mapping[int, int] = field(compare=False)
    liquidity_gross: Mapping[int, int] = field(compare=False)
    chain_id: int = 1
    block: int | None = None
    # the swap steps walked so far from this state (v3.Ladder): a cache, not part of the value
    ladders: dict[tuple[bool, bool], v3.Ladder] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def swap(
        self, zero_for_one: bool, amount_specified: int, sqrt_price_limit_x96: int | None = None
    ) -> v3.V3SwapResult:
        """UniswapV3Pool.swap without side effects; > 0 exact input, < 0 exact output."""
        return v3.swap(
            self.sqrt_price_x96,
            self.tick,
            self.liquidity,
            self.fee,
            self.tick_spacing,
            self.ticks,
            self.liquidity_net,
            zero_for_one,
            amount_specified,
            sqrt_price_limit_x96,
            self.ladders,
        )

    def unlimited(self, zero_for_one: bool, exact_input: bool) -> v3.Unlimited | None:
        """``v3.unlimited`` on this state: what ``swap`` without a price limit runs, or None
        where it reverts whatever the amount."""
        return v3.unlimited(
            self.sqrt_price_x96,
            self.tick,
            self.liquidity,
            self.fee,
            self.tick_spacing,
            self.ticks,
            self.liquidity_net,
            zero_for_one,
            exact_input,
            self.ladders,
        )

    def curve(self, zero_for_one: bool) -> tuple[float, float]:
        """(a, c) of the current range's constant-product map (virtual reserves; estimates)."""
        if self.liquidity == 0:
            return 0.0, 0.0
        sqrt_p = self.sqrt_price_x96 / 2**96
        keep = (1_000_000 - self.fee) / 1_000_000
        if zero_for_one:  # in token0 (virtual reserve L/sqrtP), out token1 (L*sqrtP)
            return keep * sqrt_p * sqrt_p, keep * sqrt_p / self.liquidity
        return keep / (sqrt_p * sqrt_p), keep / (self.liquidity * sqrt_p)

    def swap_exact_in(
        self, zero_for_one: bool, amount_in: int, sqrt_price_limit_x96: int | None = None
    ) -> Quote:
        """Exact input; a fill stopped by the price limit is reported as partial."""
        if not 0 < amount_in <= INT256_MAX:
            raise InputError(f"a V3 input must be between 1 and 2^255-1, got {amount_in}")
        r = self.swap(zero_for_one, amount_in, sqrt_price_limit_x96)
        return Quote(r.amount_in, r.amount_out, r.partial)

    def swap_exact_out(
        self, zero_for_one: bool, amount_out: int, sqrt_price_limit_x96: int | None = None
    ) -> Quote:
        """Exact output; a fill stopped by the price limit is reported as partial."""
        if not 0 < amount_out <= INT256_MAX:
            raise InputError(f"a V3 output must be between 1 and 2^255-1, got {amount_out}")
        r = self.swap(zero_for_one, -amount_out, sqrt_price_limit_x96)
        return Quote(r.amount_in, r.amount_out, r.partial)


Pool = V2Pool | V3Pool


@dataclass(frozen=True, slots=True)
class Hop:
    """One directed use of a pool: in ``token_in``, out ``token_out``."""

    pool: Pool
    zero_for_one: bool

    @property
    def token_in(self) -> Token:
        """The token this hop takes."""
        return self.pool.token0 if self.zero_for_one else self.pool.token1

    @property
    def token_out(self) -> Token:
        """The token this hop gives."""
        return self.pool.token1 if self.zero_for_one else self.pool.token0


def direction(pool: Pool, token_in: str) -> bool:
    """``zero_for_one`` for a swap of ``token_in`` on ``pool``; InputError if it is not there."""
    key = token_in.lower()
    if pool.token0.address.lower() == key:
        return True
    if pool.token1.address.lower() == key:
        return False
    raise InputError(
        f"token {token_in} is not in pool {pool.address} "
        f"({pool.token0.label()}/{pool.token1.label()})"
    )


def state_difference(ours: Pool, chain: Pool) -> str | None:
    """None when two states of a pool agree on everything swaps depend on, else what differs."""
    if type(ours) is not type(chain) or ours.address != chain.address:
        return "not the same pool"
    if isinstance(ours, V2Pool):
        assert isinstance(chain, V2Pool)
        if (ours.reserve0, ours.reserve1) != (chain.reserve0, chain.reserve1):
            return f"reserves {ours.reserve0}/{ours.reserve1} vs {chain.reserve0}/{chain.reserve1}"
        return None
    assert isinstance(chain, V3Pool)
    for name in ("sqrt_price_x96", "tick", "liquidity"):
        if getattr(ours, name) != getattr(chain, name):
            return f"{name} {getattr(ours, name)} vs {getattr(chain, name)}"
    if ours.ticks != chain.ticks:
        missing = sorted(set(chain.ticks) - set(ours.ticks))[:3]
        extra = sorted(set(ours.ticks) - set(chain.ticks))[:3]
        return f"initialized ticks differ (missing {missing}, extra {extra})"
    for tick in ours.ticks:
        if ours.liquidity_net[tick] != chain.liquidity_net[tick]:
            return f"liquidity_net at {tick}"
        if ours.liquidity_gross.get(tick) != chain.liquidity_gross.get(tick):
            return f"liquidity_gross at {tick}"
    return None
