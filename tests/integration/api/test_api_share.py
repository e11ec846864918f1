"""Shared read answers in the API (ADR 0041), on SQLite and PostgreSQL: the same read is
answered from one database read for ``share_s`` seconds, whatever the token; a change made
through the API is read at once; the engine's writes appear once the answer is older than
``share_s``; each request's token is checked, against what its digest was found to be at most
``token_cache_s`` ago (a revoked token is refused once that has passed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from arbx.api import create_app
from arbx.store import api_repo
from tests.integration.api.support import (
    CHAIN,
    CONFIGURED_LIMITS,
    NOW,
    Harness,
    TestClient,
    add_opportunities,
    add_run,
    ids,
    seeded,
)

SHARE_S = 5.0
TOKEN_CACHE_S = 2.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def shared_api(api_engine: Engine, clock: Clock) -> Iterator[Harness]:
    """The app with answers shared SHARE_S seconds on a clock the test moves."""
    factory, tokens = seeded(api_engine)
    app = create_app(
        factory,
        chain_id=CHAIN,
        configured_mode="limited",
        configured_limits=CONFIGURED_LIMITS,
        clock=lambda: NOW,
        share_s=SHARE_S,
        token_cache_s=TOKEN_CACHE_S,
    )
    app.state.ctx.shared.clock = clock
    app.state.ctx.tokens.clock = clock
    with TestClient(app) as client:
        yield Harness(client, factory, api_engine, tokens)


def computed(h: Harness) -> int:
    return int(h.client.app.state.ctx.shared.computed)  # type: ignore[attr-defined]


def test_one_read_answers_every_token_until_it_is_older_than_share_s(
    shared_api: Harness, clock: Clock
) -> None:
    run = add_run(shared_api)
    first = add_opportunities(shared_api, run, 10, [5, 6])
    page = shared_api.get("/api/v1/opportunities", limit=50)
    assert sorted(ids(page)) == sorted(first)
    later = add_opportunities(shared_api, run, 11, [7])  # the engine writes meanwhile
    for role in ("viewer", "operator", "viewer"):
        again = shared_api.get("/api/v1/opportunities", role=role, limit=50)
        assert again.content == page.content
    assert shared_api.get("/api/v1/opportunities", limit=10).json()["items"][0]["id"] == later[0]
    assert computed(shared_api) == 2  # limit=50 once, limit=10 once
    clock.now += SHARE_S
    fresh = shared_api.get("/api/v1/opportunities", limit=50)
    assert sorted(ids(fresh)) == sorted(first + later)


def test_a_change_through_the_api_is_read_at_once(shared_api: Harness) -> None:
    assert shared_api.get("/api/v1/status").json()["kill_switch"]["engaged"] is False
    engaged = shared_api.send("POST", "/api/v1/kill", {"reason": "relay misbehaving"})
    assert engaged.status_code == 200
    assert shared_api.get("/api/v1/status").json()["kill_switch"]["engaged"] is True
    released = shared_api.send("POST", "/api/v1/unkill", None)
    assert released.status_code == 200
    assert shared_api.get("/api/v1/status").json()["kill_switch"]["engaged"] is False


def test_each_request_is_authenticated_a_revoked_token_within_token_cache_s(
    shared_api: Harness, clock: Clock
) -> None:
    assert shared_api.get("/api/v1/status").status_code == 200
    with shared_api.factory.begin() as s:
        api_repo.revoke_token(s, "dash", at=NOW)
    assert shared_api.get("/api/v1/status").status_code == 200  # found valid under 2 s ago
    assert shared_api.get("/api/v1/status", role=None).status_code == 401
    assert shared_api.get("/api/v1/status", role="nope").status_code == 401
    clock.now += TOKEN_CACHE_S
    refused = shared_api.get("/api/v1/status")
    assert (refused.status_code, refused.json()["detail"]) == (401, "invalid or revoked token")
    assert shared_api.get("/api/v1/status", role="operator").status_code == 200
    tokens = shared_api.client.app.state.ctx.tokens  # type: ignore[attr-defined]
    assert tokens.computed == 4  # dash twice, nope, ops: each looked up once per 2 s
    for _ in range(2):
        assert shared_api.get("/api/v1/status", role="nope").status_code == 401
    assert tokens.computed == 5  # an unknown token is remembered too


def test_errors_are_answered_each_time(shared_api: Harness) -> None:
    for _ in range(2):
        missing = shared_api.get("/api/v1/bundles/7")
        assert missing.status_code == 404
    assert computed(shared_api) == 2
