"""Fixtures for the integration tests: one anvil for the whole session, with Uniswap deployed.

The session starts anvil itself (from node_modules) and stops it at the end. Tests that change
chain state own what they change (their own pairs and pools), or restore a snapshot.
"""

import os
import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from eth_typing import ChecksumAddress
from sqlalchemy import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from arbx.devnet.anvil import Anvil, start_anvil
from arbx.devnet.chain import DevChain
from arbx.devnet.deploy import (
    TEST_TOKEN_DECIMALS,
    UniswapDeployment,
    deploy_test_tokens,
    deploy_uniswap,
)
from arbx.store import db, migrate
from tests.integration.databases import PG_ADMIN_DEFAULT, PG_ADMIN_ENV, conninfo
from tests.integration.executor_world import Market, running_market

DIFF_CASES_ENV = "ARBX_DIFF_CASES"
DIFF_SEED_ENV = "ARBX_DIFF_SEED"
DEFAULT_DIFF_CASES = 500


def diff_cases() -> int:
    """How many differential cases to run: ``$ARBX_DIFF_CASES``, never fewer than the default."""
    return max(DEFAULT_DIFF_CASES, int(os.environ.get(DIFF_CASES_ENV, DEFAULT_DIFF_CASES)))


def diff_rng(name: str) -> random.Random:
    """A reproducible random source per test module (``$ARBX_DIFF_SEED`` changes every one)."""
    return random.Random(f"{name}:{os.environ.get(DIFF_SEED_ENV, '0')}")


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    """A fresh anvil process for the session."""
    with start_anvil() as node:
        yield node


@pytest.fixture(scope="session")
def chain(anvil: Anvil) -> DevChain:
    """A connection that sends from anvil's first dev account."""
    return DevChain(anvil.url)


@pytest.fixture(scope="session")
def uniswap(chain: DevChain) -> UniswapDeployment:
    """The real Uniswap V2 and V3 contracts, deployed once."""
    return deploy_uniswap(chain)


@pytest.fixture(scope="module")
def tokens(chain: DevChain, uniswap: UniswapDeployment) -> dict[int, ChecksumAddress]:
    """Fresh TestTokens for each module (6, 8, 18 decimals), keyed by decimals; funded sender."""
    addresses = deploy_test_tokens(chain, TEST_TOKEN_DECIMALS, spenders=uniswap.spenders())
    return dict(zip(TEST_TOKEN_DECIMALS, addresses, strict=True))


# --- databases: SQLite files and a fresh PostgreSQL database per session ---------------------


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh, uniquely named PostgreSQL database for this session; dropped at the end."""
    admin = make_url(os.environ.get(PG_ADMIN_ENV, PG_ADMIN_DEFAULT))
    admin_info = conninfo(admin.render_as_string(hide_password=False))
    try:
        conn = psycopg.connect(admin_info, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        reason = str(exc).splitlines()[0]
    else:
        reason = ""
    if reason:
        pytest.fail(
            f"PostgreSQL is not reachable at {admin.render_as_string()} ({reason}). The storage "
            f"tests need it: start the server, or point ${PG_ADMIN_ENV} at one.",
            pytrace=False,
        )
    name = f"arbx_test_{uuid.uuid4().hex[:12]}"
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(drivername="postgresql+psycopg", database=name).render_as_string(
            hide_password=False
        )
    finally:
        with psycopg.connect(admin_info, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database: a new SQLite file, or the session's PostgreSQL database
    with its schema wiped."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'arbx.db'}"
    url: str = request.getfixturevalue("postgres_database")
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        conn.execute("SET lock_timeout = '5s'")
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on the database, migrated to head."""
    migrate.upgrade(db_url)
    eng = db.make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions on the migrated database."""
    return db.make_session_factory(engine)


# -- the executor's market (test_executor*.py) ---------------------------------------------------


@pytest.fixture(scope="module")
def market() -> Iterator[Market]:
    """Own anvil: Uniswap, the executor (owner: the first account), the priced pools."""
    with running_market() as built:
        yield built


@pytest.fixture
def fresh(market: Market) -> Iterator[Market]:
    """The market, restored after the test."""
    snapshot = market.chain.snapshot()
    yield market
    market.chain.revert(snapshot)
