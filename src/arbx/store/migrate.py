"""Alembic, run from code: the migrations ship inside the package, no alembic.ini needed.

``upgrade(url)`` brings a database (empty or not) to the newest schema; ``current(url)`` tells
which revision it is at. A database already at a revision this release does not ship (a newer
release migrated it: docs/adr/0025) is left as it is when its schema still holds every table and
column this release's models use, as expand-only migrations guarantee; otherwise ``upgrade``
refuses with one line naming what is missing. Later features arrive as further revisions in
``migrations/versions``; SQLite runs them in batch mode.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect

from arbx.domain.errors import ConfigError
from arbx.store.db import make_engine, normalize_url
from arbx.store.models import Base

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic configuration for the packaged migrations (and ``url``, when given)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ConfigParser interpolates '%': a URL-encoded password must survive it.
        config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def head() -> str:
    """The newest revision the package ships."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if revision is None:
        raise RuntimeError("the packaged migrations have no head revision")
    return revision


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision`` (all of them by default)."""
    _run(url, revision, up=True)


def downgrade(url: str, revision: str = "base") -> None:
    """Migrate the database at ``url`` down to ``revision`` (an empty schema by default)."""
    _run(url, revision, up=False)


def current(url: str) -> str | None:
    """The revision the database at ``url`` is at; None when it has never been migrated."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def missing_schema(connection: Connection) -> list[str]:
    """The tables and columns of this release's models that the database lacks."""
    inspector = inspect(connection)
    tables = set(inspector.get_table_names())
    missing: list[str] = []
    for table in Base.metadata.sorted_tables:
        if table.name not in tables:
            missing.append(table.name)
            continue
        have = {c["name"] for c in inspector.get_columns(table.name)}
        missing += [f"{table.name}.{c.name}" for c in table.columns if c.name not in have]
    return missing


def _newer(config: Config, connection: Connection) -> str | None:
    """The database's revision when this release does not ship it (a newer one migrated it)."""
    at = MigrationContext.configure(connection).get_current_heads()
    known = {s.revision for s in ScriptDirectory.from_config(config).walk_revisions()}
    unknown = [r for r in at if r not in known]
    return unknown[0] if unknown else None


def _run(url: str, revision: str, *, up: bool) -> None:
    config = alembic_config(url)
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            newer = _newer(config, connection)
            if newer is not None:
                missing = missing_schema(connection)
                if not up or missing:
                    raise ConfigError(
                        f"the database is at revision {newer}, newer than this release's "
                        f"{head()}"
                        + (f", and lacks {', '.join(missing[:5])}" if missing else "")
                        + ": run a release that ships it (docs/adr/0025)"
                    )
                log.warning(
                    "database at revision %s, newer than this release's %s: its schema holds "
                    "every table and column this release uses, so it is left as it is",
                    newer,
                    head(),
                )
                return
            config.attributes["connection"] = connection
            if up:
                command.upgrade(config, revision)
            else:
                command.downgrade(config, revision)
    finally:
        engine.dispose()
