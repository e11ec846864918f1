"""LiquidityMath from Uniswap v3-core 1.0.1 (contracts/libraries/LiquidityMath.sol)."""

from arbx.domain.errors import MathError

UINT128_LIMIT = 1 << 128


def add_delta(x: int, y: int) -> int:
    """LiquidityMath.addDelta: x + y for a uint128 x and an int128 y, reverting 'LS' / 'LA'."""
    z = x + y
    if y < 0:
        if z < 0:
            raise MathError("LS")
    elif z >= UINT128_LIMIT:
        raise MathError("LA")
    return z
