"""Which database errors are worth another try (a restart, a cut connection, a lock) and which
are final (a refused password, a missing database, a bad statement)."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from arbx.store.db import unavailable


def _operational(message: str) -> OperationalError:
    return OperationalError("SELECT 1", {}, Exception(message))


@pytest.mark.parametrize(
    "message",
    [
        'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
        "Connection refused",
        "connection failed: FATAL:  the database system is shutting down",
        "connection failed: FATAL:  the database system is starting up",
        "server closed the connection unexpectedly",
        "terminating connection due to administrator command",
        "failed to resolve host 'postgres': [Errno -3] Temporary failure in name resolution",
        "database is locked",
    ],
)
def test_a_database_that_cannot_serve_for_now_is_tried_again(message: str) -> None:
    assert unavailable(_operational(message))


@pytest.mark.parametrize(
    "message",
    [
        'connection failed: FATAL:  password authentication failed for user "arbx"',
        'connection failed: FATAL:  database "arbx" does not exist',
        "no such table: runs",
    ],
)
def test_a_database_that_refuses_us_is_not_awaited(message: str) -> None:
    assert not unavailable(_operational(message))


def test_a_refused_statement_is_not_an_outage() -> None:
    assert not unavailable(IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert not unavailable(ValueError("connection refused"))
