"""Uniswap V2 pair math, ported from UniswapV2Library (v2-periphery) with the fee per pool.

The pair charges ``fee_bps`` basis points of the input (30 for Uniswap V2 and SushiSwap). The fee
is applied as the fraction the forks use: 997/1000 for whole multiples of 10 bps (Uniswap's own
constants, so the SafeMath overflow points match the router's too), else (10000 - fee)/10000.
"""

from arbx.domain.errors import MathError

UINT256_MAX = 2**256 - 1


def fee_fraction(fee_bps: int) -> tuple[int, int]:
    """(numerator, denominator) of the share of the input that is swapped: 997/1000 for 30 bps."""
    if not 0 <= fee_bps < 10_000:
        raise MathError(f"a V2 fee must be 0 to 9999 bps, got {fee_bps}")
    if fee_bps % 10 == 0:
        return 1000 - fee_bps // 10, 1000
    return 10_000 - fee_bps, 10_000


def get_amount_out(amount_in: int, reserve_in: int, reserve_out: int, fee_bps: int = 30) -> int:
    """UniswapV2Library.getAmountOut: the most output an exact input buys."""
    if amount_in <= 0:
        raise MathError("UniswapV2Library: INSUFFICIENT_INPUT_AMOUNT")
    if reserve_in <= 0 or reserve_out <= 0:
        raise MathError("UniswapV2Library: INSUFFICIENT_LIQUIDITY")
    gamma, den = fee_fraction(fee_bps)
    amount_in_with_fee = amount_in * gamma
    numerator = amount_in_with_fee * reserve_out
    denominator = reserve_in * den + amount_in_with_fee
    if numerator > UINT256_MAX or denominator > UINT256_MAX:
        raise MathError("ds-math-mul-overflow")
    return numerator // denominator


def get_amount_in(amount_out: int, reserve_in: int, reserve_out: int, fee_bps: int = 30) -> int:
    """UniswapV2Library.getAmountIn: the input the router sends for an exact output."""
    if amount_out <= 0:
        raise MathError("UniswapV2Library: INSUFFICIENT_OUTPUT_AMOUNT")
    if reserve_in <= 0 or reserve_out <= 0:
        raise MathError("UniswapV2Library: INSUFFICIENT_LIQUIDITY")
    if amount_out >= reserve_out:
        raise MathError("ds-math-sub-underflow")
    gamma, den = fee_fraction(fee_bps)
    numerator = reserve_in * amount_out * den
    if numerator > UINT256_MAX:
        raise MathError("ds-math-mul-overflow")
    return numerator // ((reserve_out - amount_out) * gamma) + 1


def min_amount_in(amount_out: int, reserve_in: int, reserve_out: int, fee_bps: int = 30) -> int:
    """The least input the pair's K check accepts for ``amount_out`` (``getAmountIn`` may add 1).

    UniswapV2Pair.swap accepts iff ``(r_in*D + x*G) * (r_out - y) >= r_in*r_out*D`` with the fee
    fraction G/D, that is ``x >= ceil(r_in*y*D / ((r_out-y)*G))``.
    """
    if amount_out <= 0:
        return 0
    if reserve_in <= 0 or reserve_out <= amount_out:
        raise MathError("UniswapV2: INSUFFICIENT_LIQUIDITY")
    gamma, den = fee_fraction(fee_bps)
    return -(-(reserve_in * amount_out * den) // ((reserve_out - amount_out) * gamma))
