"""The test databases: where the local PostgreSQL is, and how psycopg reaches a URL."""

from sqlalchemy import make_url

PG_ADMIN_ENV = "ARBX_TEST_POSTGRES_URL"
PG_ADMIN_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"


def conninfo(url: str) -> str:
    """A libpq URL for psycopg from a SQLAlchemy one."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
