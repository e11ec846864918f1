"""Self-scoring's inspector and classification, on real logs recorded from a devnet.

``tests/fixtures/scoring/devnet_swaps.json`` (made by ``record.py`` beside it) holds the receipts
of competitors' arbitrages included on a devnet (seed 1), with the gross profit each expected,
and of ordinary market transactions, and the pools they touched.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from arbx.chain.rpc import decode_log
from arbx.chain.swaps import decode_swap
from arbx.domain.scoring import (
    MAX_SWAPS_PER_TX,
    Found,
    Swap,
    TxSwaps,
    classify,
    find_arbitrages,
)

FIXTURE = Path(__file__).parents[1] / "fixtures" / "scoring" / "devnet_swaps.json"


@cache
def _doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return doc


def _tx(item: dict[str, Any]) -> TxSwaps:
    """The transaction's swaps, decoded from its receipt logs as the chain reader does."""
    pools = {p["address"].lower(): p for p in _doc()["pools"]}
    swaps = []
    for raw in item["logs"]:
        log = decode_log(raw)
        pool = pools.get(log.address)
        if pool is None:
            continue
        swap = decode_swap(log, pool["kind"] == "uniswap_v2", pool["token0"], pool["token1"])
        if swap is not None:
            swaps.append(swap)
    return TxSwaps(item["block"], item["index"], item["tx"], item["from"], item["to"], tuple(swaps))


def _arbitrages() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = _doc()["arbitrages"]
    assert len(found) >= 3
    return found


def test_each_recorded_arbitrage_is_found_with_its_sender_pools_and_exact_profit() -> None:
    out_of_order = 0
    for item in _arbitrages():
        tx = _tx(item)
        (arbitrage,) = find_arbitrages(tx)
        assert arbitrage.sender == item["from"]
        assert arbitrage.tx_hash == item["tx"]
        assert {p.lower() for p in arbitrage.pools} == {p.lower() for p in item["route"]}
        assert arbitrage.pools[0].lower() == item["route"][0].lower()
        assert arbitrage.profit == int(item["gross_profit"])
        out_of_order += tx.swaps[0].pool.lower() != item["route"][0].lower()
    assert out_of_order  # the flash hop's Swap log comes after the hops run inside it


def test_ordinary_transactions_are_not_arbitrages() -> None:
    plain = [_tx(item) for item in _doc()["plain"]]
    assert sum(len(t.swaps) for t in plain) >= 10
    assert all(find_arbitrages(t) == [] for t in plain)


def test_a_cycle_at_a_loss_is_not_an_arbitrage_and_too_many_swaps_are_not_searched() -> None:
    loss = (Swap("0xa", "W", 100, "X", 50), Swap("0xb", "X", 50, "W", 99))
    assert find_arbitrages(TxSwaps(1, 0, "0x1", "0xs", None, loss)) == []
    gain = (Swap("0xa", "W", 100, "X", 50), Swap("0xb", "X", 50, "W", 101))
    (found,) = find_arbitrages(TxSwaps(1, 0, "0x1", "0xs", None, gain))
    assert (found.token, found.profit) == ("W", 1)
    crowd = gain * (MAX_SWAPS_PER_TX // 2 + 1)
    assert find_arbitrages(TxSwaps(1, 0, "0x1", "0xs", None, crowd)) == []


@pytest.fixture
def taken() -> tuple[dict[str, Any], TxSwaps, list[TxSwaps]]:
    """A recorded arbitrage, and the ordinary transactions of the fixture."""
    item = _arbitrages()[0]
    return item, _tx(item), [_tx(p) for p in _doc()["plain"]]


def test_an_opportunity_someone_else_arbitraged_names_them_and_their_profit(
    taken: tuple[dict[str, Any], TxSwaps, list[TxSwaps]],
) -> None:
    item, arbitrage, plain = taken
    found = Found(item["block"] - 1, (item["route"][-1], "0x" + "ee" * 20))
    score = classify(found, [plain[:3], [arbitrage]], ours=set())
    assert score.outcome == "captured_other"
    assert (score.taker, score.taker_tx) == (item["from"], item["tx"])
    assert score.taker_profit == int(item["gross_profit"])
    assert score.decided_block == item["block"]
    ours = classify(found, [plain[:3], [arbitrage]], ours={item["tx"].lower()})
    assert ours.outcome == "captured_us"


def test_ordinary_trading_closes_and_untouched_or_found_again_stays_open(
    taken: tuple[dict[str, Any], TxSwaps, list[TxSwaps]],
) -> None:
    _, _, plain = taken
    swapper = next(t for t in plain if t.swaps)
    pool = swapper.swaps[0].pool
    found = Found(swapper.block - 1, (pool,))
    assert classify(found, [[swapper]], ours=set()).outcome == "closed"
    again = classify(found, [[swapper]], ours=set(), found_again={swapper.block})
    assert again.outcome == "still_open"
    untouched = classify(Found(1, ("0x" + "ab" * 20,)), [plain], ours=set())
    assert (untouched.outcome, untouched.decided_block) == ("still_open", None)


def test_a_failed_simulation_was_never_real_and_our_included_bundle_is_ours(
    taken: tuple[dict[str, Any], TxSwaps, list[TxSwaps]],
) -> None:
    item, arbitrage, _ = taken
    failed = Found(item["block"] - 1, tuple(item["route"]), simulation_failed=True)
    assert classify(failed, [[arbitrage]], ours=set()).outcome == "never_real"
    included = Found(item["block"] - 1, tuple(item["route"]), included=True)
    assert classify(included, [[arbitrage]], ours=set()).outcome == "captured_us"


def test_a_route_of_a_landed_batch_is_ours_only_if_its_transaction_swapped_through_it(
    taken: tuple[dict[str, Any], TxSwaps, list[TxSwaps]],
) -> None:
    item, arbitrage, _ = taken
    route = tuple(item["route"])
    ran = Found(item["block"] - 1, route, batch_txs=(item["tx"].upper(),))
    score = classify(ran, [[arbitrage]], ours=set())
    assert (score.outcome, score.decided_block, score.taker_tx) == (
        "captured_us", item["block"], item["tx"],
    )  # fmt: skip
    # carried by another landed transaction of ours that swapped nowhere near it: skipped, so
    # whoever did arbitrage its pools took it
    skipped = Found(item["block"] - 1, route, batch_txs=("0x" + "12" * 32,))
    assert classify(skipped, [[arbitrage]], ours=set()).outcome == "captured_other"
    nobody = Found(item["block"] - 1, ("0x" + "ab" * 20,), batch_txs=(item["tx"],))
    assert classify(nobody, [[arbitrage]], ours=set()).outcome == "still_open"
