"""The kill switch: a flag in the database that stops all sending on a chain (or on every chain).

It is set by a command (``arbx kill``), by a signal to the engine (SIGUSR1), or by the risk
limits on a breach, and cleared only by ``arbx unkill``. The engine calls ``KillSwitch.poll``
once per block, before it sends anything, so a switch set anywhere stops sending within one
block; ``engaged`` is the cheap in-process answer between polls. A switch that cannot be read
(the database is down) counts as engaged. ``check`` is the read-only form of ``poll`` (a deferred
transaction: it never waits for SQLite's write lock), for the fences just before a signature and
a send. Whoever must act the moment the switch engages (cancelling bundles already sent) registers
with ``on_engage``; the callbacks run in the thread that saw it (a poll's worker, the signal
handler, the caller of ``engage``) and must only hand the news over.

A signal sets the in-process flag at once (sending stops before the next signature) and a
worker thread persists it, so that other instances and a restart see it too. The handler itself
does no database work: the interrupted code may hold the database's write lock.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from arbx.store import risk_repo as rrepo
from arbx.store.db import make_session_factory
from arbx.store.risk_repo import ALL_CHAINS, KillSwitchState

__all__ = ["ALL_CHAINS", "KillSwitch", "KillSwitchState", "kill", "unkill"]


def kill(
    sessions: sessionmaker[Session],
    chain_id: int,
    reason: str,
    actor: str,
    at: datetime | None = None,
) -> KillSwitchState:
    """Engage the switch of ``chain_id`` (``ALL_CHAINS``: every chain), audited. -> new state."""
    return _set(sessions, chain_id, True, reason, actor, at or datetime.now(UTC))


def unkill(
    sessions: sessionmaker[Session],
    chain_id: int,
    actor: str,
    reason: str | None = None,
    at: datetime | None = None,
) -> KillSwitchState:
    """Release the switch of ``chain_id`` (``ALL_CHAINS``: the all-chains one), audited."""
    return _set(sessions, chain_id, False, reason, actor, at or datetime.now(UTC))


def _set(
    sessions: sessionmaker[Session],
    chain_id: int,
    engaged: bool,
    reason: str | None,
    actor: str,
    at: datetime,
) -> KillSwitchState:
    with sessions.begin() as session:
        before = rrepo.get_kill_switch(session, chain_id)
        rrepo.set_kill_switch(session, chain_id, engaged, reason=reason, actor=actor, at=at)
        after = rrepo.get_kill_switch(session, chain_id)
        rrepo.audit(
            session,
            actor,
            "kill" if engaged else "unkill",
            _jsonable(before),
            _jsonable(after),
            at=at,
        )
    return after


def _jsonable(state: KillSwitchState) -> dict[str, Any]:
    data = asdict(state)
    data["updated_at"] = state.updated_at.isoformat() if state.updated_at else None
    return data


class KillSwitch:
    """One engine's view of the kill switch of its chain."""

    def __init__(self, sessions: sessionmaker[Session], chain_id: int) -> None:
        self.sessions = sessions
        self.chain_id = chain_id
        self._state = KillSwitchState(chain_id, False)
        self._pending = threading.Event()  # set by a signal, cleared once persisted
        self._pending_reason = ""
        self._persist_lock = threading.Lock()
        self._reader = make_session_factory(sessions.kw["bind"], readonly=True)
        self._listeners: list[Callable[[], None]] = []

    @property
    def engaged(self) -> bool:
        """Whether sending is stopped, as of the last poll or signal (no database access)."""
        return self._pending.is_set() or self._state.engaged

    @property
    def state(self) -> KillSwitchState:
        """The last state seen (a pending signal shows as engaged)."""
        if self._pending.is_set():
            return KillSwitchState(self.chain_id, True, self._pending_reason, "signal")
        return self._state

    def on_engage(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` each time the switch is seen going from released to engaged."""
        self._listeners.append(callback)

    def poll(self) -> KillSwitchState:
        """Read the switch once a block (a pending signal saved first); unreadable means engaged."""
        self._persist_pending()
        return self.check()

    def check(self, conn: Connection | None = None) -> KillSwitchState:
        """Read the switch now (on ``conn`` if given), writing nothing; unreadable means engaged."""
        try:
            if conn is not None:
                found = rrepo.read_kill_switch(conn, self.chain_id)
            else:
                with self._reader() as session:
                    found = rrepo.get_kill_switch(session, self.chain_id)
        except SQLAlchemyError as exc:
            detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            found = KillSwitchState(
                self.chain_id, True, f"cannot read the kill switch: {detail}", "database"
            )
        self._seen(found)
        return self.state

    def engage(self, reason: str, actor: str) -> KillSwitchState:
        """Engage the switch for this chain, in the database, and here at once."""
        self.engage_here(reason, actor)
        self._state = kill(self.sessions, self.chain_id, reason, actor)
        return self._state

    def engage_here(self, reason: str, actor: str) -> None:
        """Engage the switch in this process at once (``engage`` also writes it down)."""
        self._seen(KillSwitchState(self.chain_id, True, reason, actor))

    def on_signal(self, signum: int, _frame: FrameType | None = None) -> None:
        """Signal handler: stop sending now; persist from a worker thread."""
        self._pending_reason = f"signal {signal.Signals(signum).name} to pid {os.getpid()}"
        was = self.engaged
        self._pending.set()
        if not was:
            self._notify()
        threading.Thread(target=self._persist_pending, name="kill-switch", daemon=True).start()

    def _seen(self, state: KillSwitchState) -> None:
        was = self.engaged
        self._state = state
        if state.engaged and not was:
            self._notify()

    def _notify(self) -> None:
        for callback in list(self._listeners):
            with contextlib.suppress(Exception):  # a listener's failure must not stop a kill
                callback()

    def install(self, signum: int = signal.SIGUSR1) -> None:
        """Make ``signum`` (SIGUSR1 by default) engage the switch; main thread only."""
        signal.signal(signum, self.on_signal)

    def _persist_pending(self) -> None:
        with self._persist_lock:
            if not self._pending.is_set():
                return
            try:
                state = kill(
                    self.sessions, self.chain_id, self._pending_reason, f"signal:{os.getpid()}"
                )
            except Exception:  # stays pending (and engaged): the next poll retries
                return
            self._state = state
            self._pending.clear()
