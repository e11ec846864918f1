"""Our Uniswap V3 swap loop against real pools, QuoterV2 and V3SwapProbe, to the wei.

Pools of all four fee tiers with a random start price and 10-40 random positions (``v3_cases``) are
read back from the chain (slot0, liquidity, ``ticks()``, the tick bitmap) into
:func:`arbx.domain.amm.v3.swap`. Every random swap (both directions, exact input and output, with
and without price limits, partial fills, invalid limits) is compared with the pool's own outcome
through ``V3SwapProbe`` (amounts, price, tick, liquidity, partial, ticks crossed) and with QuoterV2
where the quoter answers. eth_call changes nothing, so each pool serves many swaps.
"""

from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
from eth_abi.abi import decode
from eth_typing import ChecksumAddress
from web3.exceptions import ContractLogicError

from arbx.devnet.artifacts import load_artifact
from arbx.devnet.chain import DevChain
from arbx.devnet.deploy import UniswapDeployment
from arbx.devnet.solc import load_test_contract
from arbx.domain.amm.tick_math import (
    MAX_SQRT_RATIO,
    MIN_SQRT_RATIO,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
)
from arbx.domain.errors import MathError
from tests.integration.conftest import diff_cases, diff_rng
from tests.integration.v3_cases import (
    FEES,
    PAIR_DECIMALS,
    PoolState,
    SwapCase,
    build_pool,
    pool_pairs,
    random_swap,
    read_state,
)

pytestmark = pytest.mark.integration

SWAPS_PER_POOL = 48
PROBE_CHUNK = 8  # swaps per probeMany eth_call (a swap over sparse ticks walks many bitmap words)


# --- what the chain says -------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainOutcome:
    """The pool's own result (through V3SwapProbe), or its revert reason."""

    ok: bool
    amount_in: int
    amount_out: int
    sqrt_price_x96: int
    tick: int
    liquidity: int
    partial: bool
    reason: str


def revert_text(data: bytes) -> str:
    """The string of an ``Error(string)`` revert, else the data in hex."""
    if data[:4] == bytes.fromhex("08c379a0"):
        (text,) = decode(["string"], data[4:])
        return str(text)
    return "0x" + data.hex()


def outcome(case: SwapCase, result: Any) -> ChainOutcome:
    """Turn a ``V3SwapProbe.Result`` into amounts in/out and a partial flag."""
    ok, amount0, amount1, sqrt_price, tick, liquidity, reason = result
    if case.zero_for_one:
        amount_in, amount_out = amount0, -amount1
    else:
        amount_in, amount_out = amount1, -amount0
    if case.exact_input:
        partial = amount_in != case.amount_specified
    else:
        partial = amount_out != -case.amount_specified
    return ChainOutcome(
        ok, amount_in, amount_out, sqrt_price, tick, liquidity, partial, revert_text(reason)
    )


def crossed_on_chain(state: PoolState, end_tick: int, zero_for_one: bool) -> int:
    """Initialized ticks the pool crossed, from its start and end ticks (a fresh state)."""
    if zero_for_one:  # price down: a tick is crossed when the price reaches it from above
        return sum(1 for t in state.ticks if end_tick < t <= state.tick)
    return sum(1 for t in state.ticks if state.tick < t <= end_tick)


def pool_limit(case: SwapCase) -> int:
    """The limit handed to ``pool.swap``: the case's, or the quoter's default for None."""
    if case.sqrt_price_limit_x96 is not None:
        return case.sqrt_price_limit_x96
    return MIN_SQRT_RATIO + 1 if case.zero_for_one else MAX_SQRT_RATIO - 1


def probe_all(chain: DevChain, probe_address: str, cases: list[SwapCase]) -> list[ChainOutcome]:
    """Every case on its pool through V3SwapProbe.probeMany, a few swaps per eth_call."""
    probe = chain.contract(load_test_contract("V3SwapProbe"), probe_address)
    calls, chunks = [], []
    for start in range(0, len(cases), PROBE_CHUNK):
        chunk = cases[start : start + PROBE_CHUNK]
        by_pool: dict[str, list[SwapCase]] = {}
        for case in chunk:
            by_pool.setdefault(case.state.pool.address, []).append(case)
        for address, group in by_pool.items():
            swaps = [(c.zero_for_one, c.amount_specified, pool_limit(c)) for c in group]
            calls.append(probe.functions.probeMany(address, swaps))
            chunks.append(group)
    results: dict[int, ChainOutcome] = {}
    for group, answer in zip(chunks, chain.call_all(calls), strict=True):
        for case, result in zip(group, answer, strict=True):
            results[id(case)] = outcome(case, result)
    return [results[id(c)] for c in cases]


# --- fixtures ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class V3World:
    """The pools, their states, the swap cases and the probe."""

    states: list[PoolState]
    cases: list[SwapCase]
    probe: ChecksumAddress


@pytest.fixture(scope="module")
def v3_world(
    chain: DevChain, uniswap: UniswapDeployment, tokens: dict[int, ChecksumAddress]
) -> V3World:
    """Random pools on the real contracts, read back, and random swaps on them."""
    rng = diff_rng("v3")
    count = max(len(FEES) * len(PAIR_DECIMALS), -(-diff_cases() // SWAPS_PER_POOL))
    states = []
    for pair, fee in pool_pairs(chain, uniswap, tokens, count):
        pool, positions = build_pool(chain, uniswap, rng, pair, fee)
        states.append(read_state(chain, pool, positions))
    cases = [random_swap(rng, rng.choice(states)) for _ in range(len(states) * SWAPS_PER_POOL)]
    probe = chain.deploy(load_test_contract("V3SwapProbe")).address
    return V3World(states, cases, probe)


# --- tests ---------------------------------------------------------------------------------------


def test_read_back_state_matches_the_minted_positions(chain: DevChain, v3_world: V3World) -> None:
    """The chain's ticks and liquidity are what the positions imply; the bitmap has nothing else."""
    for state in v3_world.states:
        expected_net: Counter[int] = Counter()
        for p in state.positions:
            expected_net[p.tick_lower] += p.liquidity
            expected_net[p.tick_upper] -= p.liquidity
        boundaries = {t for p in state.positions for t in (p.tick_lower, p.tick_upper)}
        assert set(state.ticks) == boundaries, state.pool
        assert state.liquidity_net == {t: expected_net[t] for t in boundaries}, state.pool
        in_range = sum(
            p.liquidity for p in state.positions if p.tick_lower <= state.tick < p.tick_upper
        )
        assert state.liquidity == in_range, state.pool
        assert state.tick == get_tick_at_sqrt_ratio(state.sqrt_price_x96)

        spacing = state.pool.tick_spacing
        words: dict[int, int] = {}
        for t in state.ticks:
            compressed = t // spacing
            words[compressed >> 8] = words.get(compressed >> 8, 0) | 1 << (compressed & 0xFF)
        contract = chain.contract(load_artifact("UniswapV3Pool"), state.pool.address)
        bitmaps = chain.call_all([contract.functions.tickBitmap(w) for w in words])
        assert bitmaps == list(words.values()), state.pool

    zero_nets = sum(1 for s in v3_world.states for net in s.liquidity_net.values() if net == 0)
    assert zero_nets > 0, "no initialized tick with liquidityNet == 0 was built"


def test_swaps_match_the_pool_exactly(chain: DevChain, v3_world: V3World) -> None:
    """Amounts, price, tick, liquidity, partial fill and ticks crossed, for every case."""
    outcomes = probe_all(chain, v3_world.probe, v3_world.cases)
    mismatches: list[str] = []
    stats: Counter[str] = Counter()
    for case, chain_result in zip(v3_world.cases, outcomes, strict=True):
        ours = case.ours()
        if isinstance(ours, MathError):
            stats["reverted"] += 1
            if chain_result.ok:
                mismatches.append(f"ours raised {ours!r}, the pool swapped {chain_result}: {case}")
            elif str(ours) != chain_result.reason:
                mismatches.append(f"ours raised {ours!r}, the pool {chain_result.reason!r}: {case}")
            continue
        if not chain_result.ok:
            mismatches.append(f"the pool reverted {chain_result.reason!r}, ours {ours}: {case}")
            continue
        mine = (ours.amount_in, ours.amount_out, ours.sqrt_price_x96, ours.tick, ours.liquidity)
        theirs = (
            chain_result.amount_in,
            chain_result.amount_out,
            chain_result.sqrt_price_x96,
            chain_result.tick,
            chain_result.liquidity,
        )
        crossed = crossed_on_chain(case.state, chain_result.tick, case.zero_for_one)
        if mine != theirs or ours.partial != chain_result.partial or ours.ticks_crossed != crossed:
            mismatches.append(f"ours {ours} != pool {chain_result} (crossed {crossed}): {case}")
        stats["partial" if ours.partial else "filled"] += 1
        stats["exact_in" if case.exact_input else "exact_out"] += 1
        stats["limit" if case.sqrt_price_limit_x96 else "no_limit"] += 1
        stats[f"crossed_{min(ours.ticks_crossed, 5)}{'+' if ours.ticks_crossed >= 5 else ''}"] += 1
        stats[f"fee_{case.state.pool.fee}"] += 1
        end_tick = get_tick_at_sqrt_ratio(chain_result.sqrt_price_x96)
        if chain_result.sqrt_price_x96 == get_sqrt_ratio_at_tick(end_tick) and (
            end_tick in case.state.liquidity_net
        ):
            stats["ends_on_an_initialized_tick"] += 1

    print(
        f"\nV3 vs pool: {len(v3_world.cases)} swaps on {len(v3_world.states)} pools: {dict(stats)}"
    )
    assert not mismatches, f"{len(mismatches)} mismatches, first:\n" + "\n".join(mismatches[:3])
    assert len(v3_world.cases) >= diff_cases()
    # the random cases really reach the interesting places
    assert stats["partial"] >= 10
    assert stats["reverted"] >= 3
    assert stats["crossed_5+"] >= 10
    assert stats["crossed_1"] >= 10
    assert stats["ends_on_an_initialized_tick"] >= 10
    assert all(stats[f"fee_{fee}"] >= 20 for fee in FEES)


def quote(
    chain: DevChain, uniswap: UniswapDeployment, case: SwapCase
) -> tuple[int, int, int] | str:
    """QuoterV2's (amount, sqrtPriceX96After, initializedTicksCrossed), or its revert message."""
    quoter = chain.contract(load_artifact("QuoterV2"), uniswap.quoter_v2)
    pool = case.state.pool
    token_in, token_out = (
        (pool.token0, pool.token1) if case.zero_for_one else (pool.token1, pool.token0)
    )
    params = (
        token_in,
        token_out,
        abs(case.amount_specified),
        pool.fee,
        case.sqrt_price_limit_x96 or 0,
    )
    if case.exact_input:
        call = quoter.functions.quoteExactInputSingle(params)
    else:
        call = quoter.functions.quoteExactOutputSingle(params)
    try:
        amount, sqrt_after, crossed, _gas = call.call()
    except ContractLogicError as error:
        return str(error)
    return amount, sqrt_after, crossed


def test_swaps_match_quoter_v2(
    chain: DevChain, uniswap: UniswapDeployment, v3_world: V3World
) -> None:
    """QuoterV2 agrees wherever it answers, and refuses exactly where it is known to."""
    mismatches: list[str] = []
    stats: Counter[str] = Counter()
    for case in v3_world.cases:
        ours = case.ours()
        quoted = quote(chain, uniswap, case)
        if isinstance(ours, MathError):
            expect_refusal = True
        elif not case.exact_input and case.sqrt_price_limit_x96 is None and ours.partial:
            expect_refusal = True  # QuoterV2 requires the whole output when no limit is given
        else:  # and it refuses swaps that move nothing ("entirely within 0-liquidity regions")
            expect_refusal = ours.amount_in == 0 and ours.amount_out == 0
        if isinstance(quoted, str):
            stats["refused"] += 1
            if not expect_refusal:
                mismatches.append(f"QuoterV2 refused ({quoted}), ours {ours}: {case}")
            continue
        if expect_refusal or isinstance(ours, MathError):
            mismatches.append(
                f"QuoterV2 answered {quoted}, expected a refusal, ours {ours}: {case}"
            )
            continue
        amount = ours.amount_out if case.exact_input else ours.amount_in
        if (amount, ours.sqrt_price_x96) != quoted[:2]:
            mismatches.append(f"QuoterV2 {quoted} != ours {ours}: {case}")
        stats["answered"] += 1
        # initializedTicksCrossed is only a gas estimate (PoolTicksCounter counts bitmap bits from
        # the start to the end tick inclusive, so also the boundary of the spacing the swap started
        # or ended in without crossing it): counted, not compared. ticks_crossed is checked above.
        stats[
            "ticks_crossed_agree" if quoted[2] == ours.ticks_crossed else "ticks_crossed_differ"
        ] += 1

    print(f"\nV3 vs QuoterV2: {dict(stats)}")
    assert not mismatches, f"{len(mismatches)} mismatches, first:\n" + "\n".join(mismatches[:3])
    assert stats["answered"] >= len(v3_world.cases) // 2
