"""Alembic, run from code: the migrations ship inside the package, no alembic.ini needed.

``upgrade(url)`` brings a database (empty or not) to the newest schema; ``current(url)`` tells
which revision it is at. Later features (bundles, transactions, audit log, API tokens, risk state)
arrive as further revisions in ``migrations/versions``; SQLite runs them in batch mode.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from arbx.store.db import make_engine, normalize_url

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


def _run(url: str, revision: str, *, up: bool) -> None:
    config = alembic_config(url)
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            if up:
                command.upgrade(config, revision)
            else:
                command.downgrade(config, revision)
    finally:
        engine.dispose()
