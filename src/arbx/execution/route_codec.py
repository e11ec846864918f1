"""Calldata for ``ArbExecutor.execute``: a sized route as the contract's ABI-encoded hops.

``execute(address base, uint256 amountIn, uint256 minProfit, uint256 builderShareBps,
(address pool, address tokenIn, uint8 kind, bool zeroForOne, uint256 amountOut)[] hops)``.
A V2 hop carries the exact output to ask the pair for (the sized amount after that hop); a V3
hop's ``amountOut`` is zero, as the contract uses the pool's own result. Encoding is eth_abi's.

``executeMany(bytes[] calls)`` carries several such ``execute`` calldatas (at most
``MAX_ROUTES``, the contract's own bound): the contract runs each and skips one that reverts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from eth_abi.abi import decode, encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from arbx.domain.errors import InputError
from arbx.domain.pools import Pool, V2Pool
from arbx.domain.profit import BPS
from arbx.domain.routes import Route
from arbx.domain.sizing import Sized

KIND_V2 = 0
KIND_V3 = 1
UINT256_MAX = 2**256 - 1
INT256_MAX = 2**255 - 1
HOP_TYPE = "(address,address,uint8,bool,uint256)"
EXECUTE_TYPES = ("address", "uint256", "uint256", "uint256", f"{HOP_TYPE}[]")
EXECUTE_SIGNATURE = f"execute({','.join(EXECUTE_TYPES)})"
EXECUTE_SELECTOR = keccak(text=EXECUTE_SIGNATURE)[:4]
EXECUTE_MANY_SELECTOR = keccak(text="executeMany(bytes[])")[:4]
MAX_ROUTES = 8  # ArbExecutor.MAX_ROUTES


@dataclass(frozen=True, slots=True)
class ExecutorHop:
    """One hop as the contract takes it: pool, input token, kind, direction, V2 output."""

    pool: str
    token_in: str
    kind: int
    zero_for_one: bool
    amount_out: int

    def as_tuple(self) -> tuple[str, str, int, bool, int]:
        """The ABI tuple ``(pool, tokenIn, kind, zeroForOne, amountOut)``."""
        return (self.pool, self.token_in, self.kind, self.zero_for_one, self.amount_out)


@dataclass(frozen=True, slots=True)
class ExecuteCall:
    """The arguments of one ``execute`` call."""

    base: str
    amount_in: int
    min_profit: int
    builder_share_bps: int
    hops: tuple[ExecutorHop, ...]

    def encode(self) -> bytes:
        """The calldata: selector and ABI-encoded arguments."""
        args = (
            self.base,
            self.amount_in,
            self.min_profit,
            self.builder_share_bps,
            [hop.as_tuple() for hop in self.hops],
        )
        return EXECUTE_SELECTOR + encode(list(EXECUTE_TYPES), list(args))


@lru_cache(maxsize=65_536)
def _checksummed(address: str) -> str:
    """``to_checksum_address``, once per address: a route's pools and tokens come back often."""
    return to_checksum_address(address)


def executor_hops(route: Route, pools: Mapping[str, Pool], sized: Sized) -> tuple[ExecutorHop, ...]:
    """The route's hops for the contract, checked against the pools and the sized amounts."""
    if len(route.pools) < 2:
        raise InputError(f"a route needs at least two hops, got {len(route.pools)}")
    if len(sized.amounts) != len(route.pools):
        raise InputError(f"{len(sized.amounts)} sized amounts for {len(route.pools)} hops")
    hops = []
    for i, (address, zero_for_one) in enumerate(zip(route.pools, route.zero_for_one, strict=True)):
        pool = pools.get(address)
        if pool is None:
            raise InputError(f"no state for pool {address} of the route")
        token_in = pool.token0 if zero_for_one else pool.token1
        if token_in.address.lower() != route.tokens[i].lower():
            raise InputError(f"hop {i} on {address} does not take {route.tokens[i]}")
        amount_out = sized.amounts[i]
        if not 0 < amount_out <= UINT256_MAX:
            raise InputError(f"hop {i} gives {amount_out}: not a swap the contract can run")
        is_v2 = isinstance(pool, V2Pool)
        hops.append(
            ExecutorHop(
                pool=_checksummed(address),
                token_in=_checksummed(token_in.address),
                kind=KIND_V2 if is_v2 else KIND_V3,
                zero_for_one=zero_for_one,
                amount_out=amount_out if is_v2 else 0,
            )
        )
    return tuple(hops)


def execute_call(
    route: Route,
    pools: Mapping[str, Pool],
    sized: Sized,
    base_token: str,
    min_profit: int,
    builder_share_bps: int,
) -> ExecuteCall:
    """The ``execute`` arguments for a sized route; InputError if they do not fit together."""
    if route.base.lower() != base_token.lower() or route.tokens[-1].lower() != base_token.lower():
        raise InputError(f"route starts at {route.base}, not at the base token {base_token}")
    if not 0 < sized.amount_in <= INT256_MAX:
        raise InputError(f"amount in {sized.amount_in} is outside 1..2^255-1")
    if not 0 <= min_profit <= UINT256_MAX:
        raise InputError(f"min profit {min_profit} is outside 0..2^256-1")
    if not 0 <= builder_share_bps <= BPS:
        raise InputError(f"builder share {builder_share_bps} bps is outside 0..{BPS}")
    return ExecuteCall(
        base=_checksummed(base_token),
        amount_in=sized.amount_in,
        min_profit=min_profit,
        builder_share_bps=builder_share_bps,
        hops=executor_hops(route, pools, sized),
    )


def encode_execute(
    route: Route,
    pools: Mapping[str, Pool],
    sized: Sized,
    base_token: str,
    min_profit: int,
    builder_share_bps: int,
) -> bytes:
    """Calldata of ``execute`` for a sized route (see :func:`execute_call` for the checks)."""
    return execute_call(route, pools, sized, base_token, min_profit, builder_share_bps).encode()


def decode_execute(calldata: bytes) -> ExecuteCall:
    """The arguments of ``execute`` calldata; InputError if it is not such a call."""
    if calldata[:4] != EXECUTE_SELECTOR:
        raise InputError("calldata is not a call of execute")
    base, amount_in, min_profit, share, raw_hops = decode(list(EXECUTE_TYPES), calldata[4:])
    hops: Sequence[tuple[str, str, int, bool, int]] = raw_hops
    return ExecuteCall(
        base=to_checksum_address(base),
        amount_in=amount_in,
        min_profit=min_profit,
        builder_share_bps=share,
        hops=tuple(
            ExecutorHop(to_checksum_address(p), to_checksum_address(t), k, z, out)
            for p, t, k, z, out in hops
        ),
    )


def encode_execute_many(calls: Sequence[bytes]) -> bytes:
    """Calldata of ``executeMany`` over ``execute`` calldatas; InputError past the contract's
    bounds (none, more than ``MAX_ROUTES``, or one that is not an ``execute`` call)."""
    if not 1 <= len(calls) <= MAX_ROUTES:
        raise InputError(f"executeMany takes 1..{MAX_ROUTES} routes, got {len(calls)}")
    for call in calls:
        if call[:4] != EXECUTE_SELECTOR:
            raise InputError("executeMany takes only calls of execute")
    return EXECUTE_MANY_SELECTOR + encode(["bytes[]"], [list(calls)])


def decode_execute_many(calldata: bytes) -> tuple[ExecuteCall, ...]:
    """The routes of ``executeMany`` calldata; InputError if it is not such a call."""
    if calldata[:4] != EXECUTE_MANY_SELECTOR:
        raise InputError("calldata is not a call of executeMany")
    (calls,) = decode(["bytes[]"], calldata[4:])
    if not 1 <= len(calls) <= MAX_ROUTES:
        raise InputError(f"executeMany takes 1..{MAX_ROUTES} routes, got {len(calls)}")
    return tuple(decode_execute(bytes(call)) for call in calls)
