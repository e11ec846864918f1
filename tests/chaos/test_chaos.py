"""The fault suite's short form: a limited-mode run on the devnet through one RPC endpoint killed,
PostgreSQL restarted, a builder answering 5xx, and the engine SIGKILLed the moment a
bundle reaches the builder, then restarted. Every fault is survived, and the chain, the builder
and the database agree: nothing sent twice, nothing lost, no parity failure (``make chaos`` runs
them all)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from chaos.postgres import available
from chaos.suite import SHORT, run_suite, table

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not available(), reason="PostgreSQL's server binaries are not installed"),
]


def test_short_fault_suite_survives_with_nothing_sent_twice_or_lost_on_chain(
    tmp_path: Path,
) -> None:
    report = asyncio.run(run_suite(tmp_path, SHORT, hold_s=4.0))
    shown = table(report) + "\n" + "\n".join(report["findings"] + report["crash_details"])
    assert [x["name"] for x in report["faults"]] == [
        "rpc endpoint killed",
        "postgresql restarted",
        "builder 5xx",
        "engine SIGKILLed mid-bundle",
    ], shown
    assert all(x["survived"] for x in report["faults"]), shown
    assert report["crashes"] == 0, shown
    assert report["double_sends"] == 0, shown
    # Every transaction the chain included or the builder received has its record, also the one
    # handed to the builder in the instant of the SIGKILL (its intent is written before it leaves)
    assert report["lost_records"] == 0, shown
    assert report["parity_failures"] == 0, shown
    totals = report["totals"]
    assert totals["chain_txs"] > 0, shown  # money moved: bundles landed
    assert totals["parity_checks"] > 0, shown  # and the engine compared its pools with the chain
