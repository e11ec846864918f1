"""Shared by every test: ``arbx`` commands run in-process configure the process's logging
(``arbx.obs.logging``); each test gets the logging it started with back afterwards. Property
tests have no deadline: a test is not a timing (a loaded machine failed one at 200 ms)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from hypothesis import settings

settings.register_profile("arbx", deadline=None)
settings.load_profile("arbx")


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level, factory = list(root.handlers), root.level, logging.getLogRecordFactory()
    filters = {handler: list(handler.filters) for handler in handlers}
    yield
    logging.setLogRecordFactory(factory)
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler, kept in filters.items():
        handler.filters[:] = kept
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
