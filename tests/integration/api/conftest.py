"""Fixtures of the API tests: one migrated database per test module and backend (SQLite file,
local PostgreSQL), wiped before each test, and an app with a fixed clock and two tokens.

PostgreSQL: a fresh database per test session on ``$ARBX_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``), dropped at the end.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine

from arbx.api import create_app
from arbx.store import db, migrate
from tests.integration.api.support import (
    CHAIN,
    CONFIGURED_LIMITS,
    NOW,
    Harness,
    TestClient,
    seeded,
)
from tests.integration.databases import conninfo as conninfo_of


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """A database migrated to head, for the whole module: a SQLite file, or PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('api') / 'arbx.db'}"
    else:
        url = request.getfixturevalue("postgres_database")  # the session's, shared
        with psycopg.connect(conninfo_of(url), autocommit=True) as conn:
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")
    migrate.upgrade(url)
    engine = db.make_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def api(api_engine: Engine) -> Iterator[Harness]:
    """An empty database with the test chain and two tokens, and the app on it."""
    factory, tokens = seeded(api_engine)
    now = [NOW]
    app = create_app(
        factory,
        chain_id=CHAIN,
        configured_mode="limited",
        configured_limits=CONFIGURED_LIMITS,
        clock=lambda: now[0],
        poll_interval=0.05,
    )
    with TestClient(app) as client:
        yield Harness(client, factory, api_engine, tokens, now)
