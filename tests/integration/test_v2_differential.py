"""Our Uniswap V2 math against the real pair and router, on random reserves, to the wei.

Each case sets a real pair's reserves (mint or burn the pair's TestToken balances, then ``sync``),
then compares ``get_amount_out``/``get_amount_in`` with ``UniswapV2Router02.getAmountsOut`` and
``getAmountsIn``, and asks the pair itself (through ``V2Probe``, in an eth_call) which trades its
K check accepts: ``get_amount_out`` and ``min_amount_in`` must be exactly on the edge.
"""

import random
from dataclasses import dataclass

import pytest
from eth_typing import ChecksumAddress

from arbx.devnet.artifacts import load_artifact
from arbx.devnet.chain import DevChain
from arbx.devnet.deploy import (
    UINT112_MAX,
    UniswapDeployment,
    V2Pair,
    add_v2_liquidity,
    create_v2_pair,
    set_v2_reserves,
    token,
)
from arbx.devnet.solc import load_test_contract
from arbx.domain.amm.v2 import get_amount_in, get_amount_out, min_amount_in
from tests.integration.conftest import diff_cases, diff_rng

pytestmark = pytest.mark.integration

PAIR_DECIMALS = ((6, 18), (8, 18), (6, 8))
PROBE_FUNDING = 1 << 120


@dataclass(frozen=True)
class Case:
    """One random trade on one random pair state."""

    pair: V2Pair
    reserve0: int
    reserve1: int
    zero_for_one: bool
    amount_in: int
    amount_out: int

    @property
    def reserves_in_out(self) -> tuple[int, int]:
        """(reserve of the input token, reserve of the output token)."""
        if self.zero_for_one:
            return self.reserve0, self.reserve1
        return self.reserve1, self.reserve0

    @property
    def path(self) -> list[ChecksumAddress]:
        """The router path, input token first."""
        p = self.pair
        return [p.token0, p.token1] if self.zero_for_one else [p.token1, p.token0]


def random_reserve(rng: random.Random) -> int:
    """Tiny to nearly 2**112, log-uniform, with the extremes drawn on purpose."""
    roll = rng.random()
    if roll < 0.05:
        return rng.randint(1, 10)
    if roll < 0.10:
        return UINT112_MAX - rng.randint(0, 2**40)
    return rng.randint(1, 2 ** rng.randint(1, 112))


def random_amount(rng: random.Random, reserve: int, cap: int) -> int:
    """An amount from 1 wei to several times ``reserve``, never above ``cap``."""
    roll = rng.random()
    if roll < 0.1:
        amount = rng.randint(1, 1000)
    elif roll < 0.8:
        amount = max(1, reserve * rng.randint(1, 10**6) // 10**6 // 2 ** rng.randint(0, 30))
    else:
        amount = rng.randint(1, 2 ** rng.randint(1, 112))
    return max(1, min(amount, cap))


def random_case(rng: random.Random, pair: V2Pair) -> Case:
    """Reserves, a direction, an exact input and an exact output (below the output reserve)."""
    while True:
        reserve0, reserve1 = random_reserve(rng), random_reserve(rng)
        zero_for_one = rng.random() < 0.5
        r_in, r_out = (reserve0, reserve1) if zero_for_one else (reserve1, reserve0)
        if r_out >= 2:  # some output must be possible
            break
    amount_in = random_amount(rng, r_in, UINT112_MAX - r_in)  # the pair's balance fits uint112
    amount_out = random_amount(rng, r_out, r_out - 1)
    return Case(pair, reserve0, reserve1, zero_for_one, amount_in, amount_out)


@pytest.fixture(scope="module")
def v2_setup(
    chain: DevChain, uniswap: UniswapDeployment, tokens: dict[int, ChecksumAddress]
) -> tuple[list[V2Pair], ChecksumAddress]:
    """Three real pairs (6/18, 8/18, 6/8 decimals) and a funded V2Probe."""
    pairs = []
    for dec_a, dec_b in PAIR_DECIMALS:
        pair = create_v2_pair(chain, uniswap, tokens[dec_a], tokens[dec_b])
        add_v2_liquidity(chain, pair, 10**6 * 10**dec_a, 10**6 * 10**dec_b)
        pairs.append(pair)
    probe = chain.deploy(load_test_contract("V2Probe"))
    chain.send_all(
        token(chain, t).functions.mint(probe.address, PROBE_FUNDING) for t in tokens.values()
    )
    return pairs, probe.address


def test_v2_math_matches_router_and_k_check(
    chain: DevChain, uniswap: UniswapDeployment, v2_setup: tuple[list[V2Pair], ChecksumAddress]
) -> None:
    pairs, probe_address = v2_setup
    router = chain.contract(load_artifact("UniswapV2Router02"), uniswap.v2_router)
    probe = chain.contract(load_test_contract("V2Probe"), probe_address)
    rng = diff_rng("v2")
    mismatches: list[str] = []
    checked = {"router_out": 0, "router_in": 0, "k_edges": 0}

    for _ in range(diff_cases()):
        case = random_case(rng, rng.choice(pairs))
        set_v2_reserves(chain, case.pair, case.reserve0, case.reserve1)
        r_in, r_out = case.reserves_in_out

        out = get_amount_out(case.amount_in, r_in, r_out)
        amount_in = get_amount_in(case.amount_out, r_in, r_out)
        least = min_amount_in(case.amount_out, r_in, r_out)
        # (input, output, should the K check accept it?): each number exactly on the edge
        trials = [
            (least, case.amount_out, True),  # the least input for this output ...
            (least - 1, case.amount_out, False),  # ... is the least
            (amount_in, case.amount_out, True),  # the router's input always suffices
            (case.amount_in, out, True),  # the most output for this input ...
            (case.amount_in, out + 1, False),  # ... is the most
        ]
        trials = [t for t in trials if 0 < t[0] <= UINT112_MAX - r_in and 0 < t[1] < r_out]
        chain_out, chain_in, (oks, reasons) = chain.call_all(
            [
                router.functions.getAmountsOut(case.amount_in, case.path),
                router.functions.getAmountsIn(case.amount_out, case.path),
                probe.functions.accepts(
                    case.pair.address,
                    case.zero_for_one,
                    [t[0] for t in trials],
                    [t[1] for t in trials],
                ),
            ]
        )
        checked["router_out"] += 1
        if out != chain_out[1]:
            mismatches.append(f"getAmountsOut {chain_out[1]} != ours {out}: {case}")
        checked["router_in"] += 1
        if amount_in != chain_in[0]:
            mismatches.append(f"getAmountsIn {chain_in[0]} != ours {amount_in}: {case}")
        for (x, y, expected), ok, reason in zip(trials, oks, reasons, strict=True):
            checked["k_edges"] += 1
            if ok != expected:
                mismatches.append(f"pair {'accepts' if ok else 'rejects'} {x} -> {y}: {case}")
            elif not ok and b"UniswapV2: K" not in reason:
                mismatches.append(f"rejected {x} -> {y} for {reason!r}, not K: {case}")

    print(f"\nV2 differential: {diff_cases()} states, checks {checked}")
    assert not mismatches, f"{len(mismatches)} mismatches, first: " + "\n".join(mismatches[:5])
    assert checked["k_edges"] >= 3 * diff_cases()
