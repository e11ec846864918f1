"""Records written while the database restarts are written once it is back, in order."""

from __future__ import annotations

import asyncio
import threading

import pytest
from chaos.postgres import PrivatePostgres, available
from sqlalchemy import select

from arbx.executors.records import RecordWriter
from arbx.store import make_engine, make_session_factory, migrate, repo
from arbx.store.models import Chain

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not available(), reason="PostgreSQL's server binaries are not installed"),
]


@pytest.mark.asyncio
async def test_records_queued_while_postgres_restarts_are_all_written_in_order(
    postgres: PrivatePostgres,
) -> None:
    url = postgres.url()
    migrate.upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    writer = RecordWriter(retry_for=60.0)
    order: list[int] = []

    def record(chain_id: int) -> None:
        with sessions.begin() as session:
            repo.upsert_chain(session, chain_id, f"chain {chain_id}")
        order.append(chain_id)

    try:
        await writer.submit(record, 1)  # a pooled connection, soon dead
        await asyncio.to_thread(postgres.stop, "fast")
        jobs = [writer.submit(record, n) for n in (2, 3, 4)]
        await asyncio.sleep(1.0)
        assert order == [1]  # nothing can be written meanwhile
        restart = threading.Thread(target=postgres.start)
        restart.start()
        await asyncio.gather(*jobs)
        restart.join()
    finally:
        writer.close()
        engine.dispose()
    assert order == [1, 2, 3, 4]
    assert writer.failures == 0
    assert writer.retries >= 1
    with sessions() as session:
        assert sorted(session.scalars(select(Chain.id))) == [1, 2, 3, 4]
