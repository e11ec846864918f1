"""SqrtPriceMath from Uniswap v3-core 1.0.1 (contracts/libraries/SqrtPriceMath.sol).

Prices are Q64.96 square roots (uint160), liquidity is uint128, amounts are uint256. Every branch of
the Solidity is kept, including the ones that only differ by how they detect overflow: the two
formulas of ``getNextSqrtPriceFromAmount0RoundingUp`` can round differently, so which one runs
must be decided exactly as on-chain.
"""

from arbx.domain.amm.full_math import UINT256_MAX, div_rounding_up, mul_div, mul_div_rounding_up
from arbx.domain.errors import MathError

RESOLUTION = 96
Q96 = 1 << RESOLUTION
UINT160_MAX = (1 << 160) - 1
INT256_LIMIT = 1 << 255


def get_next_sqrt_price_from_amount0_rounding_up(
    sqrt_p_x96: int, liquidity: int, amount: int, add: bool
) -> int:
    """SqrtPriceMath.getNextSqrtPriceFromAmount0RoundingUp: the price after a token0 change."""
    if amount == 0:
        return sqrt_p_x96
    numerator1 = liquidity << RESOLUTION
    product = amount * sqrt_p_x96
    if add:
        if product <= UINT256_MAX and numerator1 + product <= UINT256_MAX:
            return mul_div_rounding_up(numerator1, sqrt_p_x96, numerator1 + product)
        if sqrt_p_x96 == 0:
            raise MathError("SqrtPriceMath: division by zero")
        denominator = numerator1 // sqrt_p_x96 + amount
        if denominator > UINT256_MAX:
            raise MathError("LowGasSafeMath.add: overflow")
        return div_rounding_up(numerator1, denominator)
    if product > UINT256_MAX or numerator1 <= product:
        raise MathError("SqrtPriceMath: denominator underflow")
    result = mul_div_rounding_up(numerator1, sqrt_p_x96, numerator1 - product)
    if result > UINT160_MAX:
        raise MathError("SafeCast.toUint160: overflow")
    return result


def get_next_sqrt_price_from_amount1_rounding_down(
    sqrt_p_x96: int, liquidity: int, amount: int, add: bool
) -> int:
    """SqrtPriceMath.getNextSqrtPriceFromAmount1RoundingDown: the price after a token1 change."""
    if add:
        if amount <= UINT160_MAX:
            if liquidity == 0:
                raise MathError("SqrtPriceMath: division by zero")
            quotient = (amount << RESOLUTION) // liquidity
        else:
            quotient = mul_div(amount, Q96, liquidity)
        result = sqrt_p_x96 + quotient
        if result > UINT160_MAX:
            raise MathError("SafeCast.toUint160: overflow")
        return result
    if amount <= UINT160_MAX:
        quotient = div_rounding_up(amount << RESOLUTION, liquidity)
    else:
        quotient = mul_div_rounding_up(amount, Q96, liquidity)
    if sqrt_p_x96 <= quotient:
        raise MathError("SqrtPriceMath: price underflow")
    return sqrt_p_x96 - quotient


def get_next_sqrt_price_from_input(
    sqrt_p_x96: int, liquidity: int, amount_in: int, zero_for_one: bool
) -> int:
    """SqrtPriceMath.getNextSqrtPriceFromInput: the price after swapping in amount_in."""
    if sqrt_p_x96 <= 0:
        raise MathError("SqrtPriceMath: zero price")
    if liquidity <= 0:
        raise MathError("SqrtPriceMath: zero liquidity")
    if zero_for_one:
        return get_next_sqrt_price_from_amount0_rounding_up(sqrt_p_x96, liquidity, amount_in, True)
    return get_next_sqrt_price_from_amount1_rounding_down(sqrt_p_x96, liquidity, amount_in, True)


def get_next_sqrt_price_from_output(
    sqrt_p_x96: int, liquidity: int, amount_out: int, zero_for_one: bool
) -> int:
    """SqrtPriceMath.getNextSqrtPriceFromOutput: the price after swapping out amount_out."""
    if sqrt_p_x96 <= 0:
        raise MathError("SqrtPriceMath: zero price")
    if liquidity <= 0:
        raise MathError("SqrtPriceMath: zero liquidity")
    if zero_for_one:
        return get_next_sqrt_price_from_amount1_rounding_down(
            sqrt_p_x96, liquidity, amount_out, False
        )
    return get_next_sqrt_price_from_amount0_rounding_up(sqrt_p_x96, liquidity, amount_out, False)


def get_amount0_delta(
    sqrt_ratio_a_x96: int, sqrt_ratio_b_x96: int, liquidity: int, round_up: bool
) -> int:
    """SqrtPriceMath.getAmount0Delta (uint128 liquidity): token0 between two prices."""
    if sqrt_ratio_a_x96 > sqrt_ratio_b_x96:
        sqrt_ratio_a_x96, sqrt_ratio_b_x96 = sqrt_ratio_b_x96, sqrt_ratio_a_x96
    numerator1 = liquidity << RESOLUTION
    numerator2 = sqrt_ratio_b_x96 - sqrt_ratio_a_x96
    if sqrt_ratio_a_x96 <= 0:
        raise MathError("SqrtPriceMath: zero price")
    if round_up:
        return div_rounding_up(
            mul_div_rounding_up(numerator1, numerator2, sqrt_ratio_b_x96), sqrt_ratio_a_x96
        )
    return mul_div(numerator1, numerator2, sqrt_ratio_b_x96) // sqrt_ratio_a_x96


def get_amount1_delta(
    sqrt_ratio_a_x96: int, sqrt_ratio_b_x96: int, liquidity: int, round_up: bool
) -> int:
    """SqrtPriceMath.getAmount1Delta (uint128 liquidity): token1 between two prices."""
    if sqrt_ratio_a_x96 > sqrt_ratio_b_x96:
        sqrt_ratio_a_x96, sqrt_ratio_b_x96 = sqrt_ratio_b_x96, sqrt_ratio_a_x96
    if round_up:
        return mul_div_rounding_up(liquidity, sqrt_ratio_b_x96 - sqrt_ratio_a_x96, Q96)
    return mul_div(liquidity, sqrt_ratio_b_x96 - sqrt_ratio_a_x96, Q96)


def _to_int256(y: int) -> int:
    if y >= INT256_LIMIT:
        raise MathError("SafeCast.toInt256: overflow")
    return y


def get_amount0_delta_signed(sqrt_ratio_a_x96: int, sqrt_ratio_b_x96: int, liquidity: int) -> int:
    """SqrtPriceMath.getAmount0Delta (int128 liquidity): signed token0 for a liquidity change."""
    if liquidity < 0:
        return -_to_int256(get_amount0_delta(sqrt_ratio_a_x96, sqrt_ratio_b_x96, -liquidity, False))
    return _to_int256(get_amount0_delta(sqrt_ratio_a_x96, sqrt_ratio_b_x96, liquidity, True))


def get_amount1_delta_signed(sqrt_ratio_a_x96: int, sqrt_ratio_b_x96: int, liquidity: int) -> int:
    """SqrtPriceMath.getAmount1Delta (int128 liquidity): signed token1 for a liquidity change."""
    if liquidity < 0:
        return -_to_int256(get_amount1_delta(sqrt_ratio_a_x96, sqrt_ratio_b_x96, -liquidity, False))
    return _to_int256(get_amount1_delta(sqrt_ratio_a_x96, sqrt_ratio_b_x96, liquidity, True))
