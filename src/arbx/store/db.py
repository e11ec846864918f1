"""Engines and sessions from a database URL.

SQLite at ``./data/arbx.db`` is the default; ``ARBX_DATABASE_URL`` selects another database
(PostgreSQL in production). SQLite connections are set up so that several processes (the engine
and the API) can share one file: write-ahead logging (readers never block the writer), a busy
timeout (a writer waits for another instead of failing), foreign keys on, and transactions that
take the write lock when they begin (``BEGIN IMMEDIATE``), so that a transaction which reads and
then writes cannot hit the "database is locked" error that SQLite raises without waiting when two
deferred transactions both try to upgrade to writing. Read-only sessions
(``make_session_factory(engine, readonly=True)``) begin deferred and never take that lock.

Sessions do not commit by themselves: callers own the transaction, usually
``with factory.begin() as session: ...``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from arbx.domain.errors import ConfigError

DATABASE_URL_ENV = "ARBX_DATABASE_URL"
DEFAULT_DATABASE_URL = "sqlite:///./data/arbx.db"
SQLITE_BUSY_TIMEOUT_MS = 15_000
_BEGIN_OPTION = "arbx_sqlite_begin"

# What a database says while it cannot serve for a while (restarting, its host not yet resolvable,
# another writer holding SQLite's lock): worth another try, unlike a refused password or a
# database that does not exist.
_UNAVAILABLE = (
    "connection refused",
    "could not connect",
    "connection reset",
    "connection timed out",
    "timeout expired",
    "no route to host",
    "the database system is shutting down",
    "the database system is starting up",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "server closed the connection unexpectedly",
    "terminating connection due to administrator command",
    "consuming input failed",
    "failed to resolve host",
    "name or service not known",
    "temporary failure in name resolution",
    "database is locked",
)


def database_url(env: Mapping[str, str] | None = None) -> str:
    """The database URL from ``ARBX_DATABASE_URL`` (``env``, default the process's), else SQLite."""
    raw = (os.environ if env is None else env).get(DATABASE_URL_ENV, "").strip()
    return normalize_url(raw) if raw else DEFAULT_DATABASE_URL


def normalize_url(url: str) -> str:
    """The URL with PostgreSQL pointed at the psycopg 3 driver; ConfigError if unparseable."""
    parsed = _parse(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``url``; for a SQLite file, its directory is created and pragmas are set."""
    parsed = _parse(normalize_url(url))
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, echo)
    return create_engine(parsed, echo=echo, pool_pre_ping=True)


def unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot serve for now (a restart, a cut connection, a
    lock held by another writer) rather than that it refuses us or the request."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError):
        return False
    detail = str(getattr(exc, "orig", None) or exc).lower()
    return any(sign in detail for sign in _UNAVAILABLE)


def make_session_factory(engine: Engine, *, readonly: bool = False) -> sessionmaker[Session]:
    """Sessions bound to ``engine``; ``readonly`` ones never take SQLite's write lock."""
    bind = engine.execution_options(**{_BEGIN_OPTION: "DEFERRED"}) if readonly else engine
    return sessionmaker(bind=bind, expire_on_commit=False)


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL, or None for another database or an in-memory one."""
    parsed = _parse(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"invalid database URL {url!r}: {exc}") from None


def _sqlite_engine(url: URL, echo: bool) -> Engine:
    path = sqlite_path(url.render_as_string(hide_password=False))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        echo=echo,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )
    file_backed = path is not None

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (see _on_begin) instead of the driver's legacy mode.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if file_backed:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine
