"""Repositories for the API and what it shares with the engine: bearer tokens, engine controls
(mode ceiling and limits set by operators), heartbeats, and live-event notifications.

Same habits as ``arbx.store.repo``: plain functions over a ``Session``; none of them commits.

Tokens are 32 random bytes, URL-safe base64 (``new_token``); only their SHA-256 (hex) is stored.
A fast unsalted hash is enough here: salts and slow hashes protect low-entropy secrets (passwords)
against dictionary attacks, while guessing a 256-bit random token is hopeless at any hash speed.
It also lets a request find its token by an indexed lookup of the hash.

The engine calls ``beat`` at every block, ``notify_event`` after it writes opportunities or
settles a bundle (PostgreSQL delivers ``pg_notify`` on commit to the API's LISTEN; SQLite has no
notifications, so there it does nothing and the API polls), and ``get_controls`` at every block
to pick up the mode ceiling and limits operators set (``Controls.ceiling_or`` / ``limits_or``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from eth_utils.address import is_checksum_address, is_hex_address, to_checksum_address
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from arbx.domain.errors import InputError
from arbx.domain.limits import ANY_TOKEN, Limits, limits_refusal, tightened
from arbx.domain.modes import MODES, Mode, mode_ceiling, mode_refusal
from arbx.store.models import ApiTokenRow, EngineControlsRow, HeartbeatRow
from arbx.store.repo import upsert_row
from arbx.store.risk_repo import audit

ROLES: Final = ("viewer", "operator")
EVENTS_CHANNEL: Final = "arbx_events"
EVENT_KINDS: Final = ("opportunity", "bundle", "status")
ENGINE: Final = "engine"
UINT256_MAX: Final = 2**256 - 1
MAX_FAILURES: Final = 1_000_000
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
_IDS_PER_NOTIFY = 500  # keeps a payload far under PostgreSQL's 8000-byte limit
_KEEP: Any = object()


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A stored token, without its hash."""

    id: int
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class Controls:
    """What operators set for a chain's engine; None fields fall back to the settings."""

    chain_id: int
    mode_ceiling: Mode | None
    limits: Limits | None
    updated_at: datetime
    updated_by: str

    def ceiling_or(self, configured: Mode) -> Mode:
        """The mode ceiling in force: the operators' one where it is lower, else the configured."""
        return mode_ceiling(configured, self.mode_ceiling)

    def limits_or(self, configured: Limits) -> Limits:
        """The limits in force: the operators' ones, none looser than the configured one."""
        return tightened(self.limits, configured)


class ControlRefusedError(InputError):
    """An operator asked for more risk than the settings allow (a mode or a limit above them)."""


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The last beat of a component on a chain."""

    component: str
    chain_id: int
    run_id: int | None
    head_block: int | None
    synced_block: int | None
    at: datetime


# --- tokens -----------------------------------------------------------------------------------


def new_token() -> str:
    """A fresh bearer token: 32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The stored form of a token: SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def add_token(session: Session, name: str, role: str, at: datetime | None = None) -> str:
    """Store a new token named ``name`` with ``role``. -> the token (shown once, never stored)."""
    if not _NAME.fullmatch(name):
        raise InputError(
            f"token name {name!r}: 1-64 characters, letters, digits, '_', '.', '@' or '-'"
        )
    if role not in ROLES:
        raise InputError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    if session.scalar(select(ApiTokenRow.id).where(ApiTokenRow.name == name)) is not None:
        raise InputError(f"a token named {name!r} already exists (revoke it or pick another)")
    token = new_token()
    session.add(
        ApiTokenRow(
            name=name,
            role=role,
            token_hash=hash_token(token),
            created_at=at or datetime.now(UTC),
        )
    )
    session.flush()
    return token


def list_tokens(session: Session) -> list[TokenInfo]:
    """Every token (revoked ones too), by name."""
    return [_token(r) for r in session.scalars(select(ApiTokenRow).order_by(ApiTokenRow.name))]


def revoke_token(session: Session, name: str, at: datetime | None = None) -> TokenInfo:
    """Revoke the token named ``name``; InputError if there is none or it is already revoked."""
    row = session.scalar(select(ApiTokenRow).where(ApiTokenRow.name == name))
    if row is None:
        raise InputError(f"no token named {name!r}")
    if row.revoked_at is not None:
        raise InputError(f"token {name!r} was already revoked at {row.revoked_at.isoformat()}")
    row.revoked_at = at or datetime.now(UTC)
    session.flush()
    return _token(row)


def find_token(session: Session, token: str) -> TokenInfo | None:
    """The stored token matching ``token`` (revoked or not), or None."""
    digest = hash_token(token)
    row = session.scalar(select(ApiTokenRow).where(ApiTokenRow.token_hash == digest))
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    return _token(row)


def touch_token(session: Session, token_id: int, at: datetime | None = None) -> None:
    """Record that a token was just used."""
    row = session.get(ApiTokenRow, token_id)
    if row is not None:
        row.last_used_at = at or datetime.now(UTC)
        session.flush()


def _token(row: ApiTokenRow) -> TokenInfo:
    return TokenInfo(row.id, row.name, row.role, row.created_at, row.revoked_at, row.last_used_at)


# --- engine controls --------------------------------------------------------------------------


def parse_limits(
    max_input: Mapping[str, int],
    daily_gas_cap_wei: int,
    daily_loss_cap_wei: int,
    max_consecutive_failures: int,
) -> Limits:
    """Checked limits: positive amounts, token keys checksummed addresses or '*'; InputError."""
    caps: dict[str, int] = {}
    for token, cap in max_input.items():
        caps[_token_key(token)] = _positive(f"max_input[{token}]", cap, UINT256_MAX)
    return Limits(
        max_input=caps,
        daily_gas_cap_wei=_positive("daily_gas_cap_wei", daily_gas_cap_wei, UINT256_MAX),
        daily_loss_cap_wei=_positive("daily_loss_cap_wei", daily_loss_cap_wei, UINT256_MAX),
        max_consecutive_failures=_positive(
            "max_consecutive_failures", max_consecutive_failures, MAX_FAILURES
        ),
    )


def limits_to_json(limits: Limits) -> dict[str, Any]:
    """Limits as stored in ``engine_controls.limits_json`` (amounts as decimal strings)."""
    return {
        "max_input": {k: str(v) for k, v in sorted(limits.max_input.items())},
        "daily_gas_cap_wei": str(limits.daily_gas_cap_wei),
        "daily_loss_cap_wei": str(limits.daily_loss_cap_wei),
        "max_consecutive_failures": limits.max_consecutive_failures,
    }


def limits_from_json(data: Mapping[str, Any]) -> Limits:
    """The limits ``limits_to_json`` wrote."""
    return Limits(
        max_input={k: int(v) for k, v in data["max_input"].items()},
        daily_gas_cap_wei=int(data["daily_gas_cap_wei"]),
        daily_loss_cap_wei=int(data["daily_loss_cap_wei"]),
        max_consecutive_failures=int(data["max_consecutive_failures"]),
    )


def get_controls(session: Session, chain_id: int) -> Controls | None:
    """What operators set for ``chain_id``, or None when nothing was ever set."""
    row = session.get(EngineControlsRow, chain_id)
    if row is None:
        return None
    mode = row.mode_ceiling if row.mode_ceiling in MODES else None
    return Controls(
        chain_id=row.chain_id,
        mode_ceiling=mode,
        limits=limits_from_json(row.limits_json) if row.limits_json else None,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


def set_controls(
    session: Session,
    chain_id: int,
    *,
    actor: str,
    mode_ceiling: Mode | None = _KEEP,
    limits: Limits | None = _KEEP,
    reason: str | None = None,
    at: datetime | None = None,
    configured_mode: Mode | None = None,
    configured_limits: Limits | None = None,
) -> Controls:
    """Set the mode ceiling and/or the limits (None: back to the settings), audited. -> new.

    With ``configured_mode`` / ``configured_limits`` (see ``arbx.domain.limits.configured_bound``)
    a ceiling or a limit above them raises ControlRefusedError and changes nothing (``refusal``
    checks first and audits it).
    """
    if mode_ceiling is not _KEEP and mode_ceiling is not None and mode_ceiling not in MODES:
        raise InputError(f"unknown mode {mode_ceiling!r}; one of {', '.join(MODES)}")
    if mode_ceiling not in (_KEEP, None) and configured_mode is not None:
        why = mode_refusal(configured_mode, mode_ceiling)
        if why is not None:
            raise ControlRefusedError(why)
    if limits not in (_KEEP, None) and configured_limits is not None:
        why = limits_refusal(limits, configured_limits)
        if why is not None:
            raise ControlRefusedError(why)
    at = at or datetime.now(UTC)
    before = get_controls(session, chain_id)
    mode = (before.mode_ceiling if before else None) if mode_ceiling is _KEEP else mode_ceiling
    new_limits = (before.limits if before else None) if limits is _KEEP else limits
    row = {
        "chain_id": chain_id,
        "mode_ceiling": mode,
        "limits_json": limits_to_json(new_limits) if new_limits is not None else None,
        "updated_at": at,
        "updated_by": actor,
    }
    upsert_row(session, EngineControlsRow, row, ["chain_id"])
    after = get_controls(session, chain_id)
    if after is None:  # pragma: no cover - just written
        raise RuntimeError(f"engine controls of chain {chain_id} vanished")
    if limits is _KEEP:
        action = "set_mode"
    elif mode_ceiling is _KEEP:
        action = "set_limits"
    else:
        action = "set_controls"
    audit(
        session,
        actor,
        action,
        _controls_json(before, chain_id),
        {**_controls_json(after, chain_id), "reason": reason},
        at=at,
    )
    return after


def refusal(
    session: Session,
    chain_id: int,
    *,
    actor: str,
    mode_ceiling: Mode | None = _KEEP,
    limits: Limits | None = _KEEP,
    configured_mode: Mode | None = None,
    configured_limits: Limits | None = None,
    reason: str | None = None,
    at: datetime | None = None,
) -> str | None:
    """Why this change would raise risk above the settings (audited as ``refuse_...``), or None.

    Call it before ``set_controls`` in the same transaction, commit, then refuse with the line.
    """
    why = None
    requested: Any = None
    if mode_ceiling not in (_KEEP, None) and configured_mode is not None:
        why = mode_refusal(configured_mode, mode_ceiling)
        action, requested = "refuse_set_mode", mode_ceiling
    if why is None and limits not in (_KEEP, None) and configured_limits is not None:
        why = limits_refusal(limits, configured_limits)
        action, requested = "refuse_set_limits", limits_to_json(limits)
    if why is None:
        return None
    before = _controls_json(get_controls(session, chain_id), chain_id)
    after = {"requested": requested, "refused": why, "reason": reason}
    audit(session, actor, action, before, after, at=at)
    return why


def _controls_json(controls: Controls | None, chain_id: int) -> dict[str, Any]:
    if controls is None:
        return {"chain_id": chain_id, "mode_ceiling": None, "limits": None}
    return {
        "chain_id": chain_id,
        "mode_ceiling": controls.mode_ceiling,
        "limits": limits_to_json(controls.limits) if controls.limits else None,
    }


def _token_key(token: str) -> str:
    if token == ANY_TOKEN:
        return token
    if not isinstance(token, str) or not is_hex_address(token):
        raise InputError(f"max_input key {token!r} is neither a 0x-prefixed address nor '*'")
    body = token[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(token):
        raise InputError(f"max_input key {token} has a bad EIP-55 checksum")
    return str(to_checksum_address(token))


def _positive(name: str, value: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{name} must be a whole number, got {value!r}")
    if not 1 <= value <= high:
        raise InputError(f"{name} must be between 1 and {high}, got {value}")
    return value


# --- heartbeats and notifications -------------------------------------------------------------


def beat(
    session: Session,
    chain_id: int,
    *,
    run_id: int | None,
    head_block: int | None,
    synced_block: int | None,
    component: str = ENGINE,
    at: datetime | None = None,
) -> None:
    """Record that ``component`` is alive on ``chain_id`` and how far it got; notifies status."""
    row = {
        "component": component,
        "chain_id": chain_id,
        "run_id": run_id,
        "head_block": head_block,
        "synced_block": synced_block,
        "at": at or datetime.now(UTC),
    }
    upsert_row(session, HeartbeatRow, row, ["component", "chain_id"])
    notify_event(session, "status", {"chain_id": chain_id})


def get_heartbeat(
    session: Session, chain_id: int | None = None, component: str = ENGINE
) -> Heartbeat | None:
    """The heartbeat of ``component`` on ``chain_id`` (any chain: the newest), or None."""
    stmt = select(HeartbeatRow).where(HeartbeatRow.component == component)
    if chain_id is not None:
        stmt = stmt.where(HeartbeatRow.chain_id == chain_id)
    row = session.scalar(stmt.order_by(HeartbeatRow.at.desc()).limit(1))
    if row is None:
        return None
    return Heartbeat(
        row.component, row.chain_id, row.run_id, row.head_block, row.synced_block, row.at
    )


def notify_event(session: Session, kind: str, payload: Mapping[str, Any] | None = None) -> None:
    """Tell API processes about new rows (on commit): ``{"ids": [...]}`` or ``{"id": n}``.

    PostgreSQL: ``pg_notify('arbx_events', json)``, ids split over several notifications to stay
    under the payload limit. SQLite: nothing (the API polls).
    """
    if kind not in EVENT_KINDS:
        raise InputError(f"unknown event kind {kind!r}; one of {', '.join(EVENT_KINDS)}")
    if session.get_bind().dialect.name != "postgresql":
        return
    body = dict(payload or {})
    ids = [int(i) for i in body.pop("ids", [])]
    if "id" in body:
        ids.append(int(body.pop("id")))
    chunks = [ids[i : i + _IDS_PER_NOTIFY] for i in range(0, len(ids), _IDS_PER_NOTIFY)] or [[]]
    for chunk in chunks:
        message = json.dumps({"kind": kind, **body, "ids": chunk}, separators=(",", ":"))
        if len(message.encode()) > 7_900:
            raise InputError("event payload too large for a notification (keep it to ids)")
        session.execute(select(func.pg_notify(EVENTS_CHANNEL, message)))
