"""Shared inputs for the V3 math tests: case counts, integer strategies, v3-core's price helper."""

import os
from decimal import Decimal, getcontext

from hypothesis import strategies as st

from arbx.domain.amm.full_math import UINT256_MAX
from arbx.domain.amm.sqrt_price_math import Q96
from arbx.domain.amm.tick_math import MAX_SQRT_RATIO, MAX_TICK, MIN_SQRT_RATIO, MIN_TICK

CASES = int(os.environ.get("ARBX_DIFF_CASES", "300"))
uint160 = st.integers(min_value=1, max_value=(1 << 160) - 1)
uint128 = st.integers(min_value=0, max_value=(1 << 128) - 1)
uint256 = st.integers(min_value=0, max_value=UINT256_MAX)
ticks_in_range = st.integers(min_value=MIN_TICK, max_value=MAX_TICK)
prices_in_range = st.integers(min_value=MIN_SQRT_RATIO, max_value=MAX_SQRT_RATIO - 1)


def encode_price_sqrt(reserve1: int, reserve0: int) -> int:
    """v3-core's test helper encodePriceSqrt: floor(sqrt(reserve1 / reserve0) * 2**96)."""
    getcontext().prec = 100
    return int((Decimal(reserve1) / Decimal(reserve0)).sqrt() * Decimal(Q96))
