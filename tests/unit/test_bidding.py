"""The builder's share per opportunity from the rivals seen on its pools, the several-routes
batch of a block, and the risk limits counted per route of one transaction."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from arbx.domain.bidding import MAX_POOLS, MAX_SIGHTINGS, BidPolicy, Competition, share_bps
from arbx.domain.capture import best_disjoint, disjoint_batch, routes_to_send
from arbx.domain.limits import check_batch, check_trade
from arbx.domain.profit import BPS, builder_payment
from tests.unit.test_risk import ETH, LIMITS, T0, WETH, live, opportunity

POLICY = BidPolicy(
    quiet_bps=0, contested_bps=3_000, step_bps=1_000, max_bps=6_000, memory_blocks=10
)
P1, P2, P3 = "0x" + "01" * 20, "0x" + "02" * 20, "0x" + "03" * 20
GROSS, GAS = 10**16, 10**15


def test_no_rival_seen_pays_the_quiet_share() -> None:
    seen = Competition()
    assert share_bps((P1, P2), GROSS, GAS, seen, 100, POLICY) == 0
    assert share_bps((P1,), GROSS, GAS, seen, 100, replace(POLICY, quiet_bps=200)) == 200


def test_a_rival_on_any_pool_raises_the_share_by_sighting_up_to_the_max() -> None:
    seen = Competition()
    seen.saw([P2.upper().replace("0X", "0x")], 95)  # addresses in any case
    assert share_bps((P1, P2), GROSS, GAS, seen, 100, POLICY) == 3_000
    assert share_bps((P1, P3), GROSS, GAS, seen, 100, POLICY) == 0  # not on these pools
    seen.saw([P1], 97)
    assert share_bps((P1, P2), GROSS, GAS, seen, 100, POLICY) == 4_000
    seen.saw([P1, P2], 98)  # one arbitrage through both pools is one sighting
    assert share_bps((P1, P2), GROSS, GAS, seen, 100, POLICY) == 5_000
    for block in range(91, 95):
        seen.saw([P1], block)
    assert share_bps((P1,), GROSS, GAS, seen, 100, POLICY) == 6_000  # the max


def test_sightings_are_forgotten_after_the_memory() -> None:
    seen = Competition()
    seen.saw([P1], 90)
    assert share_bps((P1,), GROSS, GAS, seen, 99, POLICY) == 3_000
    assert share_bps((P1,), GROSS, GAS, seen, 100, POLICY) == 0  # 10 blocks on
    assert seen.sightings((P1,), 89, 10) == 0  # nor counted before they happened


def test_the_share_leaves_the_gas_and_the_least_net_profit() -> None:
    seen = Competition()
    seen.saw([P1], 99)
    # gross 10^16, gas 8 * 10^15: at most 2 * 10^15 - 1 may go to the builder (19.99...%)
    share = share_bps((P1,), GROSS, 8 * 10**15, seen, 100, POLICY)
    assert share == 1_999
    assert GROSS - builder_payment(GROSS, share) - 8 * 10**15 >= 1
    assert GROSS - builder_payment(GROSS, share + 1) - 8 * 10**15 < 1
    assert share_bps((P1,), GROSS, GROSS, seen, 100, POLICY) == 0  # the gas eats it all
    assert share_bps((P1,), 0, 0, seen, 100, POLICY) == 0
    assert share_bps((P1,), 3, 0, seen, 100, POLICY, min_net_profit=1) <= 3_000


def test_a_rival_payment_seen_is_outbid_per_gas_by_the_least_share() -> None:
    seen = Competition()
    seen.saw([P1], 95, paid_per_gas=10**9)  # 1 gwei per gas to the coinbase
    seen.saw([P1], 96, paid_per_gas=3 * 10**9)
    seen.saw([P2], 97)  # a sighting whose payment the chain did not tell
    gas = 200_000
    share = share_bps((P1, P2), GROSS, GAS, seen, 100, POLICY, gas_units=gas)
    beat = 3 * 10**9 * (BPS + POLICY.outbid_bps) // BPS + 1  # the highest seen, plus 10%
    assert builder_payment(GROSS, share) >= beat * gas > builder_payment(GROSS, share - 1)
    assert share == 661  # 6.61% of 10^16 wei over 200,000 gas: just past 3.3 gwei per gas
    # our priority fee counts towards the payment per gas: a lower share is enough
    tipped = share_bps((P1,), GROSS, GAS, seen, 100, POLICY, gas_units=gas,
                       priority_fee_wei=10**9)  # fmt: skip
    assert builder_payment(GROSS, tipped) >= (beat - 10**9) * gas
    assert tipped < share
    # only the sightings when payments are not followed, not known, or the gas is not given
    counted = share_bps((P1, P2), GROSS, GAS, seen, 100, POLICY)
    assert counted == POLICY.contested_bps + 2 * POLICY.step_bps
    unfollowed = replace(POLICY, follow_payments=False)
    assert share_bps((P1,), GROSS, GAS, seen, 100, unfollowed, gas_units=gas) == 4_000
    assert share_bps((P2,), GROSS, GAS, seen, 100, POLICY, gas_units=gas) == 3_000
    # a rival paying more than the route can give: the max, then the room for the gas
    seen.saw([P3], 99, paid_per_gas=10**15)
    assert share_bps((P3,), GROSS, GAS, seen, 100, POLICY, gas_units=gas) == POLICY.max_bps
    assert share_bps((P3,), GROSS, 8 * 10**15, seen, 100, POLICY, gas_units=gas) == 1_999
    assert seen.highest_payment((P1, P2), 100, 3) is None  # 95 and 96 are out of memory


def test_memory_is_bounded() -> None:
    seen = Competition()
    for block in range(MAX_SIGHTINGS * 2):
        seen.saw([P1], block)
    assert seen.sightings((P1,), MAX_SIGHTINGS * 2, 10**6) == MAX_SIGHTINGS
    for i in range(MAX_POOLS + 10):
        seen.saw([f"0x{i:040x}"], 5)
    assert len(seen) == MAX_POOLS
    assert seen.sightings((f"0x{MAX_POOLS + 9:040x}",), 5, 10) == 1  # the newest kept


@pytest.mark.parametrize(
    "changes",
    [
        {"quiet_bps": -1},
        {"contested_bps": BPS + 1},
        {"max_bps": 20_000},
        {"outbid_bps": -1},
        {"memory_blocks": 0},
    ],
)
def test_policy_out_of_bounds_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"outside|at least"):
        replace(BidPolicy(), **changes)


def test_batch_is_the_best_disjoint_set_best_first_up_to_the_limit() -> None:
    candidates = [({"A", "B"}, 10), ({"A", "C"}, 7), ({"B", "D"}, 8), ({"E"}, 3), ({"F"}, 1)]
    assert best_disjoint(candidates) == (1, 2, 3, 4)
    assert disjoint_batch(candidates, limit=8) == (2, 1, 3, 4)  # most profit first
    assert disjoint_batch(candidates, limit=2) == (2, 1)
    assert disjoint_batch([({"A"}, -1)], limit=3) == ()
    assert disjoint_batch(candidates, limit=0) == ()


def test_the_best_goes_first_and_only_accepted_disjoint_others_join_it() -> None:
    candidates = [({"A", "B"}, 10), ({"A", "C"}, 7), ({"C", "D"}, 8), ({"E"}, 3), ({"F"}, 1)]
    every = routes_to_send(candidates, limit=8, extra=lambda i: True)
    assert every == (0, 2, 3, 4)  # 1 shares A with the best, which is always sent
    assert routes_to_send(candidates, limit=1, extra=lambda i: True) == (0,)
    assert routes_to_send(candidates, limit=2, extra=lambda i: True) == (0, 2)
    assert routes_to_send(candidates, limit=8, extra=lambda i: i == 4) == (0, 4)
    assert routes_to_send(candidates, limit=8, extra=lambda i: False) == (0,)
    assert routes_to_send([], limit=8, extra=lambda i: True) == ()
    with pytest.raises(ValueError, match="at least one"):
        routes_to_send(candidates, limit=0, extra=lambda i: True)


def test_batch_checks_each_route_and_their_gas_together() -> None:
    state = live()
    small = opportunity(gas_cost=4 * 10**15)
    big = opportunity(amount_in=3 * ETH)  # over the 2 ETH cap per trade
    # each alone passes the daily gas cap of 10^16; three together would not
    assert all(check_trade(o, state, LIMITS, at=T0).allowed for o in (small, small, small))
    taken, why = check_batch([small, big, small, small], state, LIMITS, max_routes=8, at=T0)
    assert taken == (0, 2)
    assert "over the cap" in why
    taken, why = check_batch([small, small], state, LIMITS, max_routes=1, at=T0)
    assert taken == (0,)
    assert "more than 1 routes" in why
    spent = live(gas_spent_wei=9 * 10**15)
    assert check_batch([small], spent, LIMITS, max_routes=8, at=T0)[0] == ()
    assert check_batch([opportunity(base=WETH)], live(mode="shadow"), LIMITS, max_routes=8)[0] == ()
