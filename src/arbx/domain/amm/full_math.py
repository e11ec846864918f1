"""FullMath and UnsafeMath from Uniswap v3-core 1.0.1 (libraries/FullMath.sol, UnsafeMath.sol).

The Solidity computes ``a * b`` in 512 bits and divides it by a 256-bit denominator; Python's
integers are unbounded, so the port only has to reproduce the reverts: a zero denominator and a
result that does not fit in 256 bits. Arguments are uint256 values (``0 <= x < 2**256``).
"""

from arbx.domain.errors import MathError

UINT256_MAX = (1 << 256) - 1


def mul_div(a: int, b: int, denominator: int) -> int:
    """FullMath.mulDiv: floor(a * b / denominator), reverting on a zero denominator or overflow."""
    if denominator <= 0:
        raise MathError("FullMath.mulDiv: zero denominator")
    result = a * b // denominator
    if result > UINT256_MAX:
        raise MathError("FullMath.mulDiv: result overflows uint256")
    return result


def mul_div_rounding_up(a: int, b: int, denominator: int) -> int:
    """FullMath.mulDivRoundingUp: ceil(a * b / denominator), reverting like mulDiv."""
    if denominator <= 0:
        raise MathError("FullMath.mulDiv: zero denominator")
    result, remainder = divmod(a * b, denominator)
    if result > UINT256_MAX:
        raise MathError("FullMath.mulDiv: result overflows uint256")
    if remainder:
        if result == UINT256_MAX:
            raise MathError("FullMath.mulDivRoundingUp: result overflows uint256")
        result += 1
    return result


def div_rounding_up(x: int, y: int) -> int:
    """UnsafeMath.divRoundingUp: ceil(x / y); like the EVM's DIV and MOD, a zero divisor gives 0."""
    if y == 0:
        return 0
    return -(-x // y)
