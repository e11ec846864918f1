"""Fixtures of the API tests: one migrated database per test module and backend (SQLite file,
local PostgreSQL), wiped before each test, and an app with a fixed clock and two tokens.

PostgreSQL: a fresh database per test session on ``$ARBX_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``), dropped at the end.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, make_url

from arbx.api import create_app
from arbx.store import api_repo, db, migrate, repo
from tests.integration.api.support import (
    CHAIN,
    CONFIGURED_LIMITS,
    NOW,
    Harness,
    TestClient,
    wipe,
)
from tests.integration.databases import PG_ADMIN_DEFAULT, PG_ADMIN_ENV
from tests.integration.databases import conninfo as conninfo_of


@pytest.fixture(scope="session")
def api_pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for the API tests of this session; dropped at the end."""
    admin = make_url(os.environ.get(PG_ADMIN_ENV, PG_ADMIN_DEFAULT))
    conninfo = conninfo_of(admin.render_as_string(hide_password=False))
    try:
        conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {admin.render_as_string()}: {exc}")
    name = f"arbx_api_test_{uuid.uuid4().hex[:12]}"
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(drivername="postgresql+psycopg", database=name).render_as_string(
            hide_password=False
        )
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """A database migrated to head, for the whole module: a SQLite file, or PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('api') / 'arbx.db'}"
    else:
        url = request.getfixturevalue("api_pg_database")
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
    wipe(api_engine)
    factory = db.make_session_factory(api_engine)
    with factory.begin() as s:
        repo.upsert_chain(s, CHAIN, "devnet")
        tokens = {
            "operator": api_repo.add_token(s, "ops", "operator", at=NOW),
            "viewer": api_repo.add_token(s, "dash", "viewer", at=NOW),
        }
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
