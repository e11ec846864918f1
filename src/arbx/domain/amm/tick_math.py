"""TickMath from Uniswap v3-core 1.0.1 (contracts/libraries/TickMath.sol).

``get_sqrt_ratio_at_tick`` multiplies the same Q128.128 magic constants as the Solidity, in the same
order, with the same truncations; ``get_tick_at_sqrt_ratio`` ports the log2 bit-twiddle (the
most-significant-bit search becomes ``int.bit_length``, which gives the same number).
"""

from math import floor, log

from arbx.domain.errors import MathError

MIN_TICK = -887272
MAX_TICK = -MIN_TICK
MIN_SQRT_RATIO = 4295128739
MAX_SQRT_RATIO = 1461446703485210103287273052203988822378723970342

_UINT256_MAX = (1 << 256) - 1

# get_tick_at_sqrt_ratio_fast: tick = log(sqrtP / 2**96) / log(sqrt(1.0001)).
_LN_Q96 = 96 * log(2)
_TICKS_PER_LN = 2 / log(1.0001)
# A float estimate is trusted only this far (in ticks) from a tick edge. The float error is below
# 1e-9 ticks and getSqrtRatioAtTick is off the true sqrt(1.0001**t)*2**96 by less than 1/2**32
# relative (its final rounding, at MIN_SQRT_RATIO), i.e. below 5e-6 ticks. Checked over every tick:
# the estimate at ratio(t) and ratio(t) - 1 is never more than 4.8e-6 from t, and the estimate is
# monotonic in the price, so a price whose estimate is further than the margin from any integer
# lies strictly inside one tick, and the floor is exact.
_EDGE_MARGIN = 1e-3

# (bit of |tick|, Q128.128 factor sqrt(1.0001) ** -bit), in the order the Solidity applies them.
_FACTORS = (
    (0x2, 0xFFF97272373D413259A46990580E213A),
    (0x4, 0xFFF2E50F5F656932EF12357CF3C7FDCC),
    (0x8, 0xFFE5CACA7E10E4E61C3624EAA0941CD0),
    (0x10, 0xFFCB9843D60F6159C9DB58835C926644),
    (0x20, 0xFF973B41FA98C081472E6896DFB254C0),
    (0x40, 0xFF2EA16466C96A3843EC78B326B52861),
    (0x80, 0xFE5DEE046A99A2A811C461F1969C3053),
    (0x100, 0xFCBE86C7900A88AEDCFFC83B479AA3A4),
    (0x200, 0xF987A7253AC413176F2B074CF7815E54),
    (0x400, 0xF3392B0822B70005940C7A398E4B70F3),
    (0x800, 0xE7159475A2C29B7443B29C7FA6E889D9),
    (0x1000, 0xD097F3BDFD2022B8845AD8F792AA5825),
    (0x2000, 0xA9F746462D870FDF8A65DC1F90E061E5),
    (0x4000, 0x70D869A156D2A1B890BB3DF62BAF32F7),
    (0x8000, 0x31BE135F97D08FD981231505542FCFA6),
    (0x10000, 0x9AA508B5B7A84E1C677DE54F3E99BC9),
    (0x20000, 0x5D6AF8DEDB81196699C329225EE604),
    (0x40000, 0x2216E584F5FA1EA926041BEDFE98),
    (0x80000, 0x48A170391F7DC42444E8FA2),
)


def get_sqrt_ratio_at_tick(tick: int) -> int:
    """TickMath.getSqrtRatioAtTick: sqrt(1.0001 ** tick) as a Q64.96, reverting 'T' out of range."""
    abs_tick = -tick if tick < 0 else tick
    if abs_tick > MAX_TICK:
        raise MathError("T")
    ratio = (
        0xFFFCB933BD6FAD37AA2D162D1A594001
        if abs_tick & 0x1
        else 0x100000000000000000000000000000000
    )
    for bit, factor in _FACTORS:
        if abs_tick & bit:
            ratio = (ratio * factor) >> 128
    if tick > 0:
        ratio = _UINT256_MAX // ratio
    # Q128.128 -> Q128.96, rounding up so that get_tick_at_sqrt_ratio of the result is consistent.
    return (ratio >> 32) + (1 if ratio & 0xFFFFFFFF else 0)


def get_tick_at_sqrt_ratio(sqrt_price_x96: int) -> int:
    """TickMath.getTickAtSqrtRatio: the greatest tick whose sqrt ratio is <= the given one ('R')."""
    if not MIN_SQRT_RATIO <= sqrt_price_x96 < MAX_SQRT_RATIO:
        raise MathError("R")
    ratio = sqrt_price_x96 << 32
    msb = ratio.bit_length() - 1
    r = ratio >> (msb - 127) if msb >= 128 else ratio << (127 - msb)
    log_2 = (msb - 128) << 64
    for shift in range(63, 49, -1):
        r = (r * r) >> 127
        f = r >> 128
        log_2 |= f << shift
        r >>= f
    log_sqrt10001 = log_2 * 255738958999603826347141  # Q128.128
    tick_low = (log_sqrt10001 - 3402992956809132418596140100660247210) >> 128
    tick_high = (log_sqrt10001 + 291339464771989622907027621153398088495) >> 128
    if tick_low == tick_high:
        return tick_low
    return tick_high if get_sqrt_ratio_at_tick(tick_high) <= sqrt_price_x96 else tick_low


def get_tick_at_sqrt_ratio_fast(sqrt_price_x96: int) -> int:
    """TickMath.getTickAtSqrtRatio, same result: a float estimate, exact port near tick edges."""
    if not MIN_SQRT_RATIO <= sqrt_price_x96 < MAX_SQRT_RATIO:
        raise MathError("R")
    position = (log(sqrt_price_x96) - _LN_Q96) * _TICKS_PER_LN
    tick = floor(position)
    if _EDGE_MARGIN < position - tick < 1.0 - _EDGE_MARGIN:
        return tick
    return get_tick_at_sqrt_ratio(sqrt_price_x96)
