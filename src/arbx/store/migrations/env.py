"""Alembic environment: run by ``arbx.store.migrate`` with a live connection, or offline.

``arbx.store.migrate`` passes an open connection in ``config.attributes["connection"]`` so that
the engine (and its SQLite pragmas) are ours. SQLite uses batch mode, so that later migrations
that alter constraints work there too (SQLite's ALTER TABLE cannot).
"""

from alembic import context
from sqlalchemy.engine import Connection

from arbx.store.db import make_engine
from arbx.store.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    """Write the migration SQL for the configured URL instead of running it."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Apply the migrations on the given connection, or on a new engine for the URL."""
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("no connection and no sqlalchemy.url given to the migrations")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
