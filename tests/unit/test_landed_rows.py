"""What the risk limits take back for a bundle row a reorg deeper than the journal replaced."""

from __future__ import annotations

from datetime import UTC, date, datetime

from arbx.domain.limits import Limits, RiskState, count_outcome, undo_outcome
from arbx.executors.landed_rows import counted_of
from arbx.store.execution_repo import LandedRow

NOW = datetime(2026, 12, 4, 13, 0, tzinfo=UTC)
LIMITS = Limits(daily_gas_cap_wei=10**20, daily_loss_cap_wei=10**20)


def row(run_id: int, status: str, gas: int | None, pnl: int | None, settled: datetime) -> LandedRow:
    return LandedRow(
        7, run_id, status, ("0x" + "ab" * 32,), 100, "0x" + "cd" * 32, gas, pnl, settled
    )


def test_a_row_of_this_run_is_taken_back_as_it_was_counted() -> None:
    state = RiskState(day=date(2026, 12, 4))
    counted_state, _, counted = count_outcome(state, "reverted", 500, -500, LIMITS, at=NOW)
    taken = counted_of(row(3, "reverted", 500, None, NOW), 3, NOW)
    assert (taken.outcome, taken.gas_cost, taken.realized_pnl, taken.day) == (
        counted.outcome, counted.gas_cost, counted.realized_pnl, counted.day,
    )  # fmt: skip
    undone, breach = undo_outcome(counted_state, taken, LIMITS, at=NOW)
    assert breach is None
    assert (undone.gas_spent_wei, undone.realized_pnl_wei, undone.consecutive_failures) == (0, 0, 0)


def test_a_row_of_another_run_moves_no_failure_count_and_an_older_day_no_counter() -> None:
    state = RiskState(day=date(2026, 12, 4), gas_spent_wei=900, realized_pnl_wei=-900,
                      consecutive_failures=2)  # fmt: skip
    other = counted_of(row(1, "reverted", 900, None, NOW), 3, NOW)
    undone, _ = undo_outcome(state, other, LIMITS, at=NOW)
    # its gas leaves today's counters; an unknown profit was read back at start as 0
    assert (undone.gas_spent_wei, undone.realized_pnl_wei) == (0, -900)
    assert undone.consecutive_failures == 2
    yesterday = counted_of(row(3, "included", 900, 50, datetime(2026, 12, 3, tzinfo=UTC)), 3, NOW)
    undone, _ = undo_outcome(state, yesterday, LIMITS, at=NOW)
    assert (undone.gas_spent_wei, undone.realized_pnl_wei) == (900, -900)
