"""A run whose process ended without a stop (SIGKILL) is closed as failed by the next start on its
chain; a run that still records its blocks is not touched (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from arbx.store import release_repo, repo
from arbx.store.models import Run

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _result(session: Session, run_id: int, number: int, at: datetime) -> None:
    release_repo.record_block_result(
        session,
        release_repo.BlockResultRecord(
            chain_id=1, run_id=run_id, release="r", role="active", block_number=number,
            block_hash="0x" + f"{number:064x}", routes=[], latency_ms=1.0, errors=0,
            recorded_at=at,
        ),
    )  # fmt: skip


def test_runs_left_running_by_a_dead_process_are_closed_and_live_ones_kept(
    factory: sessionmaker[Session],
) -> None:
    long_ago = NOW - timedelta(minutes=10)
    with factory.begin() as session:
        repo.upsert_chain(session, 1, "one")
        repo.upsert_chain(session, 2, "two")
        killed = repo.start_run(session, 1, mode="limited", started_at=long_ago)
        _result(session, killed, 100, NOW - timedelta(minutes=3))
        _result(session, killed, 101, NOW - timedelta(minutes=2, seconds=1))
        never_recorded = repo.start_run(session, 1, started_at=long_ago)
        alive = repo.start_run(session, 1, mode="limited", started_at=long_ago)
        _result(session, alive, 101, NOW - timedelta(minutes=9))
        _result(session, alive, 102, NOW - timedelta(seconds=5))  # records its blocks
        just_started = repo.start_run(session, 1, started_at=NOW - timedelta(seconds=5))
        finished = repo.start_run(session, 1, started_at=long_ago)
        repo.finish_run(session, finished, "ok", {"reason": "max blocks"}, ended_at=long_ago)
        other_chain = repo.start_run(session, 2, started_at=long_ago)
        this_one = repo.start_run(session, 1, started_at=long_ago)

    with factory.begin() as session:
        closed = repo.close_stale_runs(session, 1, now=NOW, keep=[this_one])
    assert sorted(closed) == sorted([killed, never_recorded])

    with factory() as session:
        runs = {run.id: run for run in session.query(Run)}
    for run_id in (killed, never_recorded):
        assert runs[run_id].status == "failed"
        assert (runs[run_id].summary_json or {})["reason"] == "ended without a stop: killed"
    assert runs[killed].ended_at == NOW - timedelta(minutes=2, seconds=1)  # its last sign of life
    assert runs[never_recorded].ended_at == long_ago
    for run_id in (alive, just_started, other_chain, this_one):
        assert runs[run_id].status == "running"
        assert runs[run_id].ended_at is None
    assert runs[finished].status == "ok"
    assert (runs[finished].summary_json or {})["reason"] == "max blocks"

    with factory.begin() as session:  # a second start finds nothing more to close
        assert repo.close_stale_runs(session, 1, now=NOW, keep=[this_one]) == []
