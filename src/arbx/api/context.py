"""What every request handler shares: the session factories, the chain, and the settings the
API was started with. One ``ApiContext`` per app, in ``app.state.ctx``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from fastapi import HTTPException, Request
from sqlalchemy.orm import Session, sessionmaker

from arbx.api.share import SharedAnswers
from arbx.domain.limits import Limits
from arbx.domain.modes import Mode
from arbx.domain.stages import Alerts, Schedule
from arbx.store import api_repo, browse_repo
from arbx.store.api_repo import TokenInfo

if TYPE_CHECKING:
    from arbx.api.events import EventHub


def utc_now() -> datetime:
    """The current time, UTC."""
    return datetime.now(UTC)


@dataclass
class ApiContext:
    """Sessions (``reader`` never takes SQLite's write lock), the chain, settings, the hub."""

    sessions: sessionmaker[Session]
    reader: sessionmaker[Session]
    chain_id: int | None
    schedule: Schedule
    configured_mode: Mode | None
    configured_limits: Limits | None
    heartbeat_max_age_s: float
    poll_interval: float
    clock: Callable[[], datetime] = utc_now
    touched: dict[int, float] = field(default_factory=dict)  # token id -> monotonic time
    hub: EventHub | None = None
    draining: bool = False  # shutdown has begun: /readyz answers 503
    alerts: Callable[[], Alerts] = Alerts  # the firing arbx alerts, for the stage gate
    shared: SharedAnswers[bytes] = field(default_factory=lambda: SharedAnswers(ttl_s=0.0))
    # a token's digest -> its row (None: unknown), kept api.token_cache_s (arbx.api.auth)
    tokens: SharedAnswers[TokenInfo | None] = field(
        default_factory=lambda: SharedAnswers(ttl_s=0.0)
    )

    def chain(self, session: Session) -> int | None:
        """The chain this API serves: configured, else the engine's newest heartbeat or run."""
        if self.chain_id is not None:
            return self.chain_id
        beat = api_repo.get_heartbeat(session)
        if beat is not None:
            return beat.chain_id
        run = browse_repo.latest_run(session)
        return run.chain_id if run is not None else None

    def require_chain(self, session: Session) -> int:
        """The chain, or 409 when there is none to act on yet."""
        chain = self.chain(session)
        if chain is None:
            raise HTTPException(
                409, "no chain known yet: start the engine, or start the API with --chain"
            )
        return chain


def context(request: Request) -> ApiContext:
    """The app's context (a FastAPI dependency)."""
    ctx: ApiContext = request.app.state.ctx
    return ctx
