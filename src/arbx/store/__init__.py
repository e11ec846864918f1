"""Storage: ORM models, repositories and migrations (SQLAlchemy 2, Alembic).

SQLite at ``./data/arbx.db`` by default, PostgreSQL when ``ARBX_DATABASE_URL`` says so::

    url = database_url()              # from the environment
    upgrade(url)                      # `arbx db upgrade`
    factory = make_session_factory(make_engine(url))
    with factory.begin() as session:  # one transaction
        run_id = repo.start_run(session, chain_id=1)

The repositories are in ``arbx.store.repo``; the models in ``arbx.store.models``.
"""

from arbx.store.db import (
    DATABASE_URL_ENV,
    DEFAULT_DATABASE_URL,
    database_url,
    make_engine,
    make_session_factory,
)
from arbx.store.migrate import current, downgrade, head, upgrade

__all__ = [
    "DATABASE_URL_ENV",
    "DEFAULT_DATABASE_URL",
    "current",
    "database_url",
    "downgrade",
    "head",
    "make_engine",
    "make_session_factory",
    "upgrade",
]
