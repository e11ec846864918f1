"""A private PostgreSQL for the tests that restart their database (``chaos.postgres``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chaos.postgres import PrivatePostgres


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    """A cluster of the module's own, made and started; removed afterwards."""
    server = PrivatePostgres()
    try:
        server.init()
        yield server
    finally:
        server.remove()
