"""The signer lock's handover between releases, at block boundaries.

Every engine runs its executor inside a ``ReleaseExecution``. A watcher reads the chain's open
handover request (``arbx release promote --to R``) from the database every ``poll`` seconds, off
the event loop; the request is acted on after a block's work is done, never in the middle of it:

- The active engine (its executor holds the signer lock) and a request for another release: it
  cancels its bundles still waiting at the builders, closes its live executor (nothing is signed
  after this: the signer and its risk controller are gone; the lock is released and its epoch
  closed with the time, after every signature), marks the request ``released`` with its key,
  release, holder and epoch, and goes on as a standby of its own release (shadow, no key), so it
  can be promoted back. Argo scales it down later.
- A standby (or a live engine that was refused the lock at its start: another holds it) and a
  request for its own release: it takes the signer lock of the key handed over
  (named by the request, else by the chain's last epoch) with the next epoch, only then loads
  the signing key (which must be that key), and trades at the configured mode and stage; the
  request is marked ``done`` with the new holder and epoch. While the old holder still has the
  lock, the attempt is refused and made again after the next block; an engine that was never
  given a key (the first release of a chain) loads it first, then takes the lock.

Only one process can hold the lock at a time (``risk.signer_lock``): the request only says who
should; the lock decides who can.

A standby sizes with the caps the active engine trades under (``mirror``: the key's stored
stage and the operators' limits, read by the watcher off the event loop), not with the
strategy's own, so that its per-block results compare like for like with the active's while
the stage's caps bind; once it holds the lock, its own executor's caps apply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from arbx.chain.heads import Head
from arbx.chain.parity import ParityResult
from arbx.domain.errors import ArbxError
from arbx.engine.lifecycle import Execution
from arbx.engine.pipeline import BlockResult, Lead, tell_head, tell_lead, tell_rebootstrap
from arbx.metrics import record
from arbx.store import release_repo
from arbx.store.db import make_session_factory

log = logging.getLogger(__name__)


class Switchable(Execution, Protocol):
    """An executor a release can run (shadow or live): a run's executor that also says whether
    it holds the signer lock, cancels what it has in flight, and takes the release's role."""

    def holding(self) -> tuple[str, int, str] | None:
        """(key, epoch, holder) while it holds the signer lock, else None."""
        ...

    def cancel_in_flight(self) -> None:
        """Cancel its bundles waiting at the builders (live), nothing otherwise."""
        ...

    def set_role(self, role: str) -> None:
        """What its block results call this engine: 'active' or 'standby'."""
        ...


@dataclass(frozen=True, slots=True)
class Taken:
    """A standby's live executor once it holds the lock: the executor, key, epoch, holder."""

    execution: Switchable
    key: str
    epoch: int
    holder: str


# A standby's way to go live: given the key handed over (None: not known yet), the live
# executor holding the lock, or why not now (the lock is still held). ArbxError: never.
GoLive = Callable[[str | None], Awaitable[Taken | str]]
GoStandby = Callable[[], Awaitable[Switchable]]
# The caps the engine holding a key trades under, read in a session (None: the strategy's own).
Mirror = Callable[[Session, str], Mapping[str, int] | None]


@dataclass(frozen=True, slots=True)
class Request:
    """An open handover request as last read."""

    id: int
    to_release: str
    state: str
    key: str | None


class ReleaseExecution:
    """The executor of a release: the one in force, swapped at a handover (see module doc)."""

    def __init__(
        self,
        inner: Switchable,
        *,
        sessions: sessionmaker[Session],
        chain_id: int,
        release: str,
        standby: bool,
        go_live: GoLive,
        go_standby: GoStandby,
        poll: float = 0.5,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        mirror: Mirror | None = None,
    ) -> None:
        self.inner = inner
        self.sessions = sessions
        self.reader = make_session_factory(sessions.kw["bind"], readonly=True)
        self.chain_id = chain_id
        self.release = release
        self.standby = standby  # waits to be promoted: --standby, handed over, or refused
        self.go_live = go_live
        self.go_standby = go_standby
        self.poll = poll
        self.clock = clock
        self.request: Request | None = None
        self.handled: set[int] = set()  # requests this engine is done with
        self.last_live: dict[str, object] | None = None  # totals of a live executor closed
        self.handovers: list[str] = []  # one line per handover, for the end of the run
        self._stop = asyncio.Event()
        self._watcher: asyncio.Future[None] | None = None
        self._refusal = ""
        self.mirror = mirror
        self.mirrored: Mapping[str, int] | None = None  # the active's caps, last read
        self._show_role()

    # --- the executor protocol, forwarded ---------------------------------------------------

    @property
    def status(self) -> str:
        """The executor's status line, and the release's role."""
        return f"{self.inner.status}; release {self.release} ({self.role})"

    @property
    def closing(self) -> tuple[str, ...]:
        """The executor's closing lines and the handovers of the run."""
        return (*self.inner.closing, *self.handovers)

    @property
    def role(self) -> str:
        """'active' while holding the signer lock, or as the only engine (a shadow run);
        'standby' while waiting to be promoted."""
        if self.inner.holding() is not None:
            return "active"
        return "standby" if self.standby else "active"

    def on_head(self, head: Head) -> None:
        """Forward the head to an executor that works ahead of the block."""
        tell_head(self.inner, head)

    def on_rebootstrap(self, block: int) -> None:
        """Forward a re-bootstrap of the book to an executor that checks its records then."""
        tell_rebootstrap(self.inner, block)

    async def on_lead(self, lead: Lead) -> None:
        """Forward a block's best opportunities to an executor that trades before the rest are
        sized."""
        await tell_lead(self.inner, lead)

    async def on_block(self, block: BlockResult) -> None:
        """The block's work, then, at its boundary, a handover if one is asked for."""
        if self._watcher is None:
            self._watcher = asyncio.ensure_future(self._watch())
        await self.inner.on_block(block)
        await self._boundary()

    async def on_parity(self, result: ParityResult) -> None:
        """Forward a parity check."""
        await self.inner.on_parity(result)

    def caps(self) -> Mapping[str, int] | None:
        """The executor's caps; a standby's: the active engine's, as last read (``mirror``)."""
        if self.mirror is not None and self._waiting():
            return self.mirrored
        return self.inner.caps()

    def _waiting(self) -> bool:
        """Whether this engine is a standby (no lock held, waiting to be promoted)."""
        return self.standby and self.inner.holding() is None

    async def close(self) -> dict[str, object] | None:
        """Stop watching; close the executor in force."""
        self._stop.set()
        if self._watcher is not None:
            await asyncio.gather(self._watcher, return_exceptions=True)
        totals = await self.inner.close()
        return totals if totals is not None else self.last_live

    # --- the handover ------------------------------------------------------------------------

    async def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self.request = await asyncio.to_thread(self._read)
                if self.mirror is not None and self._waiting():
                    self.mirrored = await asyncio.to_thread(self._read_caps)
            except Exception as exc:  # the next look tries again
                log.warning("cannot read the handover requests: %s", str(exc).splitlines()[0])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.poll)

    def _read(self) -> Request | None:
        with self.reader() as session:
            row = release_repo.open_handover(session, self.chain_id)
            if row is None:
                return None
            return Request(row.id, row.to_release, row.state, row.key_address)

    async def _boundary(self) -> None:
        request = self.request
        if request is None or request.id in self.handled:
            return
        holding = self.inner.holding()
        if holding is not None:
            if request.to_release == self.release:
                await self._already(request, holding)
            else:
                await self._hand_over(request, holding)
        elif request.to_release == self.release:
            await self._take(request)

    async def _already(self, request: Request, holding: tuple[str, int, str]) -> None:
        """This release already holds the lock: the request is done as it stands."""
        key, epoch, holder = holding
        await asyncio.to_thread(
            self._write, release_repo.mark_taken, request.id, key, holder, epoch
        )
        self.handled.add(request.id)

    async def _hand_over(self, request: Request, holding: tuple[str, int, str]) -> None:
        key, epoch, holder = holding
        log.warning(
            "handing the signer lock of %s (epoch %d) over to release %s",
            key,
            epoch,
            request.to_release,
            extra={"event": "handover", "release": self.release, "epoch": epoch},
        )
        self.handled.add(request.id)
        self.inner.cancel_in_flight()
        self.last_live = await self.inner.close()  # fence: the signer and the lock are gone
        released_at = self.clock()
        marked = await asyncio.to_thread(
            self._released, request.id, key, holder, epoch, released_at
        )
        self.inner = await self.go_standby()
        self.standby = True
        self._show_role()
        self.handovers.append(
            f"handed the signer lock (epoch {epoch}) to release {request.to_release} at "
            f"{released_at.isoformat()}" + ("" if marked else " (the request had ended)")
        )

    async def _take(self, request: Request) -> None:
        try:
            hint = request.key or await asyncio.to_thread(self._last_key)
            got = await self.go_live(hint)
        except ArbxError as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.error("cannot take the signer lock for release %s: %s", self.release, reason)
            self.handled.add(request.id)
            await asyncio.to_thread(self._failed, request.id, reason)
            return
        if isinstance(got, str):
            if got != self._refusal:
                log.info("release %s waits for the signer lock: %s", self.release, got)
                self._refusal = got
            return
        self.handled.add(request.id)
        old, self.inner = self.inner, got.execution
        self.standby = False
        taken_at = self.clock()
        await asyncio.to_thread(
            self._write, release_repo.mark_taken, request.id, got.key, got.holder, got.epoch
        )
        await old.close()
        self._show_role()
        log.warning(
            "release %s holds the signer lock of %s with epoch %d",
            self.release,
            got.key,
            got.epoch,
            extra={"event": "handover", "release": self.release, "epoch": got.epoch},
        )
        self.handovers.append(f"took the signer lock (epoch {got.epoch}) at {taken_at.isoformat()}")

    def _show_role(self) -> None:
        role = self.role
        self.inner.set_role(role)
        record.release_role(self.release, role)

    # --- database work (worker threads) ------------------------------------------------------

    def _read_caps(self) -> Mapping[str, int] | None:
        """The caps of the engine holding the chain's key now (the newest epoch's key)."""
        assert self.mirror is not None
        with self.reader() as session:
            row = release_repo.last_epoch(session, self.chain_id)
            return None if row is None else self.mirror(session, row.key_address)

    def _last_key(self) -> str | None:
        with self.reader() as session:
            row = release_repo.last_epoch(session, self.chain_id)
            return row.key_address if row is not None else None

    def _write(
        self,
        mark: Callable[..., bool],
        handover_id: int,
        key: str,
        holder: str,
        epoch: int,
    ) -> None:
        with self.sessions.begin() as session:
            mark(session, handover_id, key=key, holder=holder, epoch=epoch, at=self.clock())

    def _released(self, handover_id: int, key: str, holder: str, epoch: int, at: datetime) -> bool:
        with self.sessions.begin() as session:
            return release_repo.mark_released(
                session,
                handover_id,
                key=key,
                from_release=self.release,
                from_holder=holder,
                from_epoch=epoch,
                at=at,
            )

    def _failed(self, handover_id: int, reason: str) -> None:
        with self.sessions.begin() as session:
            release_repo.mark_ended(session, handover_id, "failed", reason)
