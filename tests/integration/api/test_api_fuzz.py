"""Fuzzing the API from its OpenAPI schema (schemathesis) with an operator token, over a
database with rows of every kind: no request makes the server fail, and each answer matches the
schema (status code, content type, body). 30 examples per operation on PostgreSQL (production,
and the stricter database: NUL bytes, integer ranges), 15 on SQLite.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks
from schemathesis.python import asgi
from schemathesis.specs.openapi import checks as openapi_checks

from arbx.api import create_app
from arbx.store import api_repo, db, repo
from tests.integration.api.support import (
    CHAIN,
    NOW,
    POOL_A,
    USDC,
    WETH,
    Harness,
    add_bundle,
    add_opportunities,
    add_run,
)

pytestmark = pytest.mark.integration

EXAMPLES = 30
CHECKS = [
    checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
]


# The schema does not depend on the database: read it from an app on an unused one. Each test
# sends its cases to the app of the ``api`` fixture (schemathesis's fixture-based loader does
# not run under pytest 9).
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(db.make_session_factory(db.make_engine("sqlite://")))
)


@pytest.fixture
def seeded(api: Harness) -> Harness:
    """The app over a database with a run, opportunities, bundles, a pool and a heartbeat."""
    run_id = add_run(api)
    opps = add_opportunities(api, run_id, 10, [5, -7, 2**100])
    add_bundle(api, run_id, opps[0])
    add_bundle(api, run_id, None, status="sent")
    with api.factory.begin() as s:
        repo.upsert_pools(s, [repo.PoolRecord(CHAIN, POOL_A, "uniswap_v2", WETH, USDC, 30)])
        api_repo.beat(s, CHAIN, run_id=run_id, head_block=11, synced_block=10, at=NOW)
    return api


def _fuzz(case: schemathesis.Case[Any], seeded: Harness, client: asgi.ASGIClient) -> None:
    response = case.call(session=client, app=seeded.client.app, headers=seeded.auth("operator"))
    assert response.status_code < 500, response.text
    case.validate_response(response, checks=CHECKS)


@schema.exclude(path="/api/v1/stream").parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_request_makes_postgresql_fail(
    case: schemathesis.Case[Any], only_postgresql: None, seeded: Harness, client: asgi.ASGIClient
) -> None:
    _fuzz(case, seeded, client)


@schema.exclude(path="/api/v1/stream").parametrize()
@settings(
    max_examples=EXAMPLES // 2,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_request_makes_sqlite_fail(
    case: schemathesis.Case[Any], only_sqlite: None, seeded: Harness, client: asgi.ASGIClient
) -> None:
    _fuzz(case, seeded, client)


@pytest.fixture
def only_postgresql(request: pytest.FixtureRequest) -> None:
    """Skip the SQLite instance (before any data is written)."""
    if request.node.callspec.params["api_engine"] != "postgresql":
        pytest.skip("the full fuzz run is on PostgreSQL")


@pytest.fixture
def only_sqlite(request: pytest.FixtureRequest) -> None:
    """Skip the PostgreSQL instance (before any data is written)."""
    if request.node.callspec.params["api_engine"] != "sqlite":
        pytest.skip("the SQLite fuzz run is the shorter one")


@pytest.fixture
def client(seeded: Harness) -> Iterator[asgi.ASGIClient]:
    """One in-process client for all the examples of a test."""
    # starlette types an ASGI scope as a MutableMapping, schemathesis as a dict: the same app
    with asgi.get_client(cast(asgi.ASGIApp, seeded.client.app)) as session:
        yield session
