"""API authentication on SQLite and PostgreSQL: every endpoint refuses a missing, malformed,
unknown or revoked token (401), every changing endpoint refuses a viewer (403) and changes
nothing, health needs no token; tokens are stored hashed; ``arbx token`` add/list/revoke.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from sqlalchemy import select

from arbx.cli import api as commands
from arbx.cli.args import Parser
from arbx.domain.errors import InputError
from arbx.store import api_repo
from arbx.store.models import ApiTokenRow, AuditLog
from tests.integration.api.support import (
    NOW,
    Harness,
    first_line,
)

pytestmark = pytest.mark.integration

LIMITS = {
    "max_input": {"*": "1000"},
    "daily_gas_cap_wei": "5",
    "daily_loss_cap_wei": "6",
    "max_consecutive_failures": 3,
}
READS: list[tuple[str, str, Any]] = [
    ("GET", "/api/v1/status", None),
    ("GET", "/api/v1/whoami", None),
    ("GET", "/api/v1/opportunities", None),
    ("GET", "/api/v1/bundles", None),
    ("GET", "/api/v1/bundles/{bundle_id}", None),
    ("GET", "/api/v1/pools", None),
    ("GET", "/api/v1/audit", None),
    ("GET", "/api/v1/pnl", None),
    ("GET", "/api/v1/stage", None),
    ("GET", "/api/v1/scores", None),
    ("GET", "/api/v1/mode", None),
    ("GET", "/api/v1/limits", None),
    ("GET", "/api/v1/stream", None),
]
WRITES: list[tuple[str, str, Any]] = [
    ("PUT", "/api/v1/mode", {"mode": "shadow", "reason": "test"}),
    ("PUT", "/api/v1/limits", LIMITS),
    ("DELETE", "/api/v1/limits", None),
    ("POST", "/api/v1/kill", {"reason": "test"}),
    ("POST", "/api/v1/unkill", {}),
]
HEALTH = ["/healthz", "/readyz"]


def _url(path: str) -> str:
    return path.replace("{bundle_id}", "1")


def test_the_tables_cover_every_endpoint(api: Harness) -> None:
    spec = api.client.get("/openapi.json").json()
    served = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    listed = {(m, p) for m, p, _ in READS + WRITES} | {("GET", p) for p in HEALTH}
    assert served == listed


@pytest.mark.parametrize(("method", "path", "body"), READS + WRITES)
def test_missing_or_wrong_credentials_get_401(
    api: Harness, method: str, path: str, body: Any
) -> None:
    url = _url(path)
    missing = api.client.request(method, url, json=body)
    assert missing.status_code == 401
    assert "missing bearer token" in first_line(missing)
    assert missing.headers["www-authenticate"] == "Bearer"
    not_bearer = api.client.request(
        method, url, json=body, headers={"Authorization": "Basic b3BzOm9wcw=="}
    )
    assert not_bearer.status_code == 401
    assert "missing bearer token" in first_line(not_bearer)
    for token in ("not-a-token", "x" * 300, api.tokens["operator"] + "x"):
        wrong = api.client.request(
            method, url, json=body, headers={"Authorization": f"Bearer {token}"}
        )
        assert wrong.status_code == 401, token
        assert first_line(wrong) == "invalid or revoked token"
    with api.factory() as s:
        assert s.scalars(select(AuditLog)).all() == []  # nothing changed


def test_a_revoked_token_is_refused(api: Harness) -> None:
    assert api.get("/api/v1/status").status_code == 200
    with api.factory.begin() as s:
        api_repo.revoke_token(s, "dash", at=NOW)
    refused = api.get("/api/v1/status")
    assert refused.status_code == 401
    assert first_line(refused) == "invalid or revoked token"


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_viewers_cannot_change_anything(api: Harness, method: str, path: str, body: Any) -> None:
    refused = api.send(method, path, body, role="viewer")
    assert refused.status_code == 403
    assert "needs an operator token" in first_line(refused)
    with api.factory() as s:
        assert s.scalars(select(AuditLog)).all() == []
        assert api_repo.get_controls(s, 31337) is None
    allowed = api.send(method, path, body, role="operator")
    assert allowed.status_code == 200, allowed.text


@pytest.mark.parametrize("path", HEALTH)
def test_health_needs_no_token(api: Harness, path: str) -> None:
    response = api.client.get(path)
    assert response.status_code in (200, 503)
    assert response.json()


def test_whoami_names_the_token(api: Harness) -> None:
    assert api.get("/api/v1/whoami", role="viewer").json() == {"name": "dash", "role": "viewer"}
    assert api.get("/api/v1/whoami", role="operator").json() == {"name": "ops", "role": "operator"}


def test_tokens_are_stored_as_sha256_only(api: Harness) -> None:
    with api.factory() as s:
        rows = {r.name: r for r in s.scalars(select(ApiTokenRow))}
    token = api.tokens["operator"]
    assert len(token) == 43  # 32 random bytes, URL-safe base64
    assert rows["ops"].token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {r.token_hash for r in rows.values()}
    assert rows["ops"].last_used_at is None
    assert api.get("/api/v1/status", role="operator").status_code == 200
    with api.factory() as s:
        used = s.scalar(select(ApiTokenRow.last_used_at).where(ApiTokenRow.name == "ops"))
    assert used == NOW


def test_token_repository_refuses_bad_input(api: Harness) -> None:
    with api.factory.begin() as s:
        with pytest.raises(InputError, match="already exists"):
            api_repo.add_token(s, "ops", "viewer")
        with pytest.raises(InputError, match="unknown role"):
            api_repo.add_token(s, "new", "admin")
        with pytest.raises(InputError, match="token name"):
            api_repo.add_token(s, "bad name!", "viewer")
        with pytest.raises(InputError, match="no token named"):
            api_repo.revoke_token(s, "nobody")
        api_repo.revoke_token(s, "dash")
        with pytest.raises(InputError, match="already revoked"):
            api_repo.revoke_token(s, "dash")
        assert api_repo.find_token(s, "nope") is None


def _cli(argv: list[str]) -> int:
    parser = Parser(prog="arbx")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    commands.register(sub)
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


def test_token_commands(
    api: Harness, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ARBX_DATABASE_URL", api.engine.url.render_as_string(hide_password=False))
    assert _cli(["token", "add", "--name", "ci", "--role", "viewer"]) == 0
    out, err = capsys.readouterr()
    token = out.strip()
    assert len(token) == 43
    assert "shown only this once" in err
    seen = api.client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})
    assert seen.json() == {"name": "ci", "role": "viewer"}
    assert _cli(["token", "list"]) == 0
    listing = capsys.readouterr().out
    assert "ci" in listing
    assert token not in listing
    assert _cli(["token", "revoke", "--name", "ci"]) == 0
    assert "revoked" in capsys.readouterr().out
    gone = api.client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})
    assert gone.status_code == 401
    with pytest.raises(SystemExit):
        _cli(["token", "add", "--name", "x", "--role", "admin"])
    with pytest.raises(InputError, match="no token named"):
        _cli(["token", "revoke", "--name", "ci2"])
