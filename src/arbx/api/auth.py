"""Bearer-token authentication and the two roles: viewers read, operators also change.

A request names its token in ``Authorization: Bearer <token>``; the live stream also takes
``?token=`` because a browser's EventSource cannot set headers (the token then appears in the URL:
prefer the header where the client can send it; the API's own access log is off). The token's
SHA-256 is looked up by index and compared again in constant time; revoked and unknown tokens
get the same 401. ``last_used_at`` is written at most once a minute per token, after the
response, so that reads do not queue behind the engine for SQLite's write lock.

What a token's digest was found to be (a token, revoked or not, or nothing) is kept
``api.token_cache_s`` seconds (``ApiContext.tokens``): a client's next requests are checked
without the database, and a token revoked by ``arbx token revoke`` is refused by every API
process within that time (ADR 0041). The live stream checks its token again each minute.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Annotated, Final, TypeVar

from fastapi import BackgroundTasks, Depends, HTTPException, Query, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from arbx.api.context import ApiContext, context
from arbx.domain.errors import InputError
from arbx.store import api_repo

T = TypeVar("T")
log = logging.getLogger(__name__)
TOUCH_EVERY_S: Final = 60.0
MAX_TOKEN_LENGTH: Final = 256
_CHALLENGE = {"WWW-Authenticate": "Bearer"}

bearer = HTTPBearer(
    auto_error=False,
    description="A token from `arbx token add --name NAME --role viewer|operator`.",
)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: the token's name and role."""

    token_id: int
    name: str
    role: str

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"api:{self.name}"


async def authenticate(
    ctx: ApiContext, token: str | None, background: BackgroundTasks
) -> Principal:
    """The principal of ``token``; 401 when it is missing, unknown or revoked."""
    if not token:
        raise HTTPException(
            401,
            "missing bearer token: send 'Authorization: Bearer <token>' "
            "(create one with 'arbx token add')",
            headers=_CHALLENGE,
        )
    found = None
    if len(token) <= MAX_TOKEN_LENGTH:
        digest = api_repo.hash_token(token)
        known = ctx.tokens.shared(digest)
        if known is not None:
            found = known.body
        else:
            found = await run_in_threadpool(ctx.tokens.answer, digest, lambda: _find(ctx, token))
    if found is None or found.revoked_at is not None:
        raise HTTPException(401, "invalid or revoked token", headers=_CHALLENGE)
    now = time.monotonic()
    if now - ctx.touched.get(found.id, -TOUCH_EVERY_S) >= TOUCH_EVERY_S:
        ctx.touched[found.id] = now
        background.add_task(_touch, ctx, found.id)
    return Principal(found.id, found.name, found.role)


def _find(ctx: ApiContext, token: str) -> api_repo.TokenInfo | None:
    with ctx.reader() as session:
        return api_repo.find_token(session, token)


def _touch(ctx: ApiContext, token_id: int) -> None:
    try:
        with ctx.sessions.begin() as session:
            api_repo.touch_token(session, token_id, ctx.clock())
    except Exception:  # noqa: S110 - bookkeeping only: never fail a request for it
        pass


async def viewer(
    background: BackgroundTasks,
    ctx: Annotated[ApiContext, Depends(context)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> Principal:
    """Any valid token (a FastAPI dependency)."""
    return await authenticate(ctx, credentials.credentials if credentials else None, background)


def operator(principal: Annotated[Principal, Depends(viewer)]) -> Principal:
    """An operator's token; 403 for a viewer's (a FastAPI dependency)."""
    if principal.role != "operator":
        raise HTTPException(
            403, f"token {principal.name!r} is a viewer's: this needs an operator token"
        )
    return principal


async def stream_viewer(
    background: BackgroundTasks,
    ctx: Annotated[ApiContext, Depends(context)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    token: Annotated[
        str | None,
        Query(
            max_length=MAX_TOKEN_LENGTH,
            description="the bearer token, for clients that cannot set headers (EventSource)",
        ),
    ] = None,
) -> Principal:
    """A valid token from the header or from ``?token=`` (a FastAPI dependency)."""
    return await authenticate(ctx, credentials.credentials if credentials else token, background)


Viewer = Annotated[Principal, Depends(viewer)]
Operator = Annotated[Principal, Depends(operator)]


async def revoked_after(work: Awaitable[T], sessions: sessionmaker[Session], token_name: str) -> T:
    """Await ``work`` (a server for one run), then revoke the run's token however it ended."""
    try:
        return await work
    finally:
        try:
            with sessions.begin() as session:
                api_repo.revoke_token(session, token_name)
        except (InputError, SQLAlchemyError) as exc:  # never hide why the run ended
            log.warning("could not revoke the run's API token %s: %s", token_name, exc)
