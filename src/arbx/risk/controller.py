"""The engine's risk gate for one key on one chain: mode, stage, limits, kill switch, signer lock.

The executor calls ``start`` once, ``on_block`` at every head, ``may_sign`` and ``fence`` before
every signature, ``fence`` again right before a bundle leaves, ``on_outcome`` (or ``count``) when
a bundle settles, ``undo`` when a reorg takes a settled bundle out of its block, and ``stop`` at
the end; ``keep_fresh`` runs beside it for the whole run.

Nothing on the path from a head to a bundle waits for the database. ``on_block``, ``may_sign``
and ``on_outcome`` work in memory; ``refresh`` does the database work (renew the signer lock or
take it back, read the kill switch and the operators' mode ceiling and limits, persist the mode,
record breaches and stage changes) in a worker thread, woken by every head and every
``REFRESH_INTERVAL`` seconds, so a switch set anywhere stops sending within one block. The two
fences are exact: ``fence`` reads the kill switch and asks the database whether the signer lock
is still ours (off the event loop, never waiting for SQLite's write lock).

- The mode is shadow unless the configured mode (the ceiling, lowered by operators), the current
  stage, the kill switch and the signer lock all allow a live one; ``reason`` says which did not.
- Only the instance that holds the signer lock writes the key's risk state and stage history: a
  second instance with the same key stays in shadow, says why, and changes nothing. It does not
  retry; an instance that held the lock and lost it (a broken connection, a missed renewal) tries
  to take it back at the next refresh.
- The gate to the next stage is evaluated at start, when a bundle settles and every
  ``gate_interval`` seconds (a shadow stage settles no bundles), by the lock holder only; the
  arbx alerts come from ``alerts`` (a bounded call to Prometheus) before the transaction opens.
- A limit breach engages the chain's kill switch (actor ``risk:<key>``) at once in memory, then
  in the store, and is recorded in the stage history, which demotes the stage; ``arbx unkill``
  resumes trading and resets this run's failure count. Daily gas and realized profit are read
  back from the store at start, so a restart does not reset the day's limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import Any, Final

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from arbx.domain.limits import (
    Counted,
    Decision,
    Limits,
    Outcome,
    RiskState,
    check_batch,
    check_trade,
    count_outcome,
    undo_outcome,
    utc_day,
)
from arbx.domain.modes import Mode
from arbx.domain.profit import Opportunity
from arbx.domain.stages import (
    Alerts,
    Schedule,
    StageDecision,
    effective_mode,
    evaluate_stage,
    stage_limits,
)
from arbx.metrics import record
from arbx.risk.killswitch import KillSwitch
from arbx.risk.signer_lock import SignerLock
from arbx.store import api_repo
from arbx.store import execution_repo as xrepo
from arbx.store import risk_repo as rrepo
from arbx.store.db import make_session_factory

log = logging.getLogger(__name__)
REFRESH_INTERVAL: Final = 0.5  # seconds between refreshes when no head comes


def _now() -> datetime:
    return datetime.now(UTC)


def start_of_day(at: datetime) -> datetime:
    """Midnight UTC of the day of ``at``."""
    return datetime.combine(utc_day(at), time(0), tzinfo=UTC)


class RiskController:
    """Decides, block by block and trade by trade, whether this instance may sign."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        chain_id: int,
        key_address: str,
        ceiling: Mode,
        limits: Limits,
        schedule: Schedule,
        lock: SignerLock | None,
        kill_switch: KillSwitch | None = None,
        clock: Callable[[], datetime] = _now,
        alerts: Callable[[], Alerts] = Alerts,
        gate_interval: float = 30.0,
    ) -> None:
        self.sessions = sessions
        self.chain_id = chain_id
        self.key = key_address.lower()
        self.configured: tuple[Mode, Limits] = (ceiling, limits)
        self.ceiling = ceiling  # in force: the configured one, or the operators' lower one
        self.limits = limits
        self.schedule = schedule
        self.lock = lock
        self.kill_switch = kill_switch or KillSwitch(sessions, chain_id)
        self.clock = clock
        self.alerts = alerts
        self.gate_interval = timedelta(seconds=gate_interval)
        self._evaluated_at: datetime | None = None
        self.stage = 0
        self.state = RiskState(day=utc_day(clock()))
        self.refused: str | None = None  # why the lock was refused at start: read-only run
        self.last_decision: StageDecision | None = None
        self._reader = make_session_factory(sessions.kw["bind"], readonly=True)
        self._mem = threading.Lock()  # the in-memory state; never held across database work
        self._io = threading.Lock()  # one database worker at a time
        self._breaches: list[tuple[str, dict[str, Any], datetime]] = []  # to record
        self._evaluate_due = False
        self._lock_problem: str | None = None  # why a lost lock could not be taken back
        self._stopped = False
        self._wake: asyncio.Event | None = None

    @property
    def mode(self) -> Mode:
        """The mode in force now."""
        return self.state.mode

    @property
    def reason(self) -> str | None:
        """Why the mode is what it is (None when live with nothing to say)."""
        return self.state.reason

    @property
    def writer(self) -> bool:
        """Whether this instance holds the key and so owns its risk state."""
        return self.lock is not None and self.lock.held

    def start(self) -> Mode:
        """Take the signer lock when a live mode is allowed, load the state, pick the mode."""
        now = self.clock()
        if self.lock is not None and self.ceiling != "shadow":
            self.refused = self.lock.acquire()
        with self.sessions.begin() as session:
            stored = rrepo.get_risk_state(session, self.chain_id, self.key)
            if stored is None and self.writer:
                rrepo.set_risk_state(
                    session,
                    self.chain_id,
                    self.key,
                    mode="shadow",
                    stage=0,
                    stage_entered_at=now,
                    reason="first start",
                    at=now,
                )
            self.stage = stored.stage if stored is not None else 0
            gas, pnl = xrepo.daily_totals(session, self.chain_id, self.key, start_of_day(now))
        self.state = replace(self.state, day=utc_day(now), gas_spent_wei=gas, realized_pnl_wei=pnl)
        if self.writer:
            self._evaluate(now)
        return self.refresh()

    def on_block(self) -> Mode:
        """The mode for this head, from memory. Call at every head, and ``wake`` after its trade."""
        with self._mem:
            return self._settle()

    def wake(self) -> None:
        """Ask the refresher for a refresh now (the executor: once a head's trade is out)."""
        if self._wake is not None:
            self._wake.set()

    def may_sign(self, opportunity: Opportunity, *, gas_cost_wei: int | None = None) -> Decision:
        """Whether this trade may be signed: kill switch, limits, then the lock as last known.

        In memory only; ``fence`` asks the database right before the signature.
        """
        if self.kill_switch.engaged:
            return Decision(False, f"kill switch set: {self.kill_switch.state.reason}")
        limits = stage_limits(self.limits, self.schedule.stages[self.stage])
        decision = check_trade(
            opportunity, self.state, limits, at=self.clock(), gas_cost_wei=gas_cost_wei
        )
        if not decision.allowed:
            return decision
        if self.lock is None or not self.lock.fresh():
            self._lost_lock()
            return Decision(False, "lost the signer lock")
        return decision

    def may_sign_batch(
        self, opportunities: Sequence[Opportunity], *, max_routes: int
    ) -> tuple[tuple[int, ...], str]:
        """Which of one block's opportunities may be signed together (``check_batch``), and why
        the first left out was refused; none when the kill switch is set or the lock is lost."""
        if self.kill_switch.engaged:
            return (), f"kill switch set: {self.kill_switch.state.reason}"
        limits = stage_limits(self.limits, self.schedule.stages[self.stage])
        taken, reason = check_batch(
            opportunities, self.state, limits, max_routes=max_routes, at=self.clock()
        )
        if taken and (self.lock is None or not self.lock.fresh()):
            self._lost_lock()
            return (), "lost the signer lock"
        return taken, reason

    async def fence(self) -> str | None:
        """Why nothing may be signed or sent right now (kill switch, signer lock), else None.

        Exact: the kill switch and the signer lock are read from the database, in a worker
        thread (the event loop never waits on the database), and the in-process switch (a
        signal, a breach) is looked at again once they answer.
        """
        if self.kill_switch.engaged:
            return f"kill switch set: {self.kill_switch.state.reason}"
        if self.lock is None:
            return "no signing key loaded"
        why = await asyncio.to_thread(self._fence_io, self.lock)
        if why is None and self.kill_switch.engaged:
            why = f"kill switch set: {self.kill_switch.state.reason}"
        if why == "lost the signer lock":
            self._lost_lock()
        return why

    def on_outcome(self, outcome: Outcome, gas_cost: int, realized_pnl: int) -> str | None:
        """Count a settled bundle; on a breach, stop at once and record it. -> the breach or None.

        The counters and the switch change in memory; the records are written by the refresher.
        """
        return self.count(outcome, gas_cost, realized_pnl)[1]

    def count(
        self, outcome: Outcome, gas_cost: int, realized_pnl: int
    ) -> tuple[Counted, str | None]:
        """``on_outcome``, and what it counted: ``undo`` takes it back if a reorg takes the
        bundle out of its block."""
        now = self.clock()
        limits = stage_limits(self.limits, self.schedule.stages[self.stage])
        with self._mem:
            state, breach, counted = count_outcome(
                self.state, outcome, gas_cost, realized_pnl, limits, at=now
            )
            self._fold(state, breach, now)
        if breach is not None:
            self.wake()
        return counted, breach

    def undo(self, counted: Counted) -> str | None:
        """Take back what ``count`` counted for a bundle a reorg took out of its block (it is
        counted again when it settles on the new branch); on a breach (a profit taken back can
        pass the loss cap), stop at once and record it. -> the breach or None."""
        now = self.clock()
        limits = stage_limits(self.limits, self.schedule.stages[self.stage])
        with self._mem:
            state, breach = undo_outcome(self.state, counted, limits, at=now)
            self._fold(state, breach, now)
        if breach is not None:
            self.wake()
        return breach

    def _fold(self, state: RiskState, breach: str | None, now: datetime) -> None:
        """Take ``state`` (call with ``_mem`` held); a breach engages the switch here."""
        self.state = state
        if breach is not None:
            self.kill_switch.engage_here(breach, f"risk:{self.key}")
            self._breaches.append((breach, self._counters(), now))
        self._evaluate_due = True
        self._settle()

    def refresh(self) -> Mode:
        """The database work of a block (call from a worker thread): see the module docstring."""
        with self._io:
            if self._stopped:
                return self.mode
            now = self.clock()
            self._record_breaches()
            if self.writer and (self._evaluate_due or self._gate_due(now)):
                self._evaluate_due = False
                self._evaluate(now)
            lock = self.lock
            if lock is not None and lock.held:
                lock.renew()  # also while killed: the key stays ours until we stop
            switch = self.kill_switch.poll()
            self._apply_controls()
            wants = effective_mode(self.ceiling, self.schedule.stages[self.stage]) != "shadow"
            if (
                lock is not None
                and not lock.held
                and self.refused is None
                and wants
                and not switch.engaged
            ):
                self._lock_problem = lock.acquire()
            with self._mem:
                mode = self._settle()
                reason = self.state.reason
            self._measure(mode)
            if self.writer:
                self._persist(mode, reason, now)
            return mode

    async def keep_fresh(self, stop: asyncio.Event, interval: float = REFRESH_INTERVAL) -> None:
        """Run ``refresh`` in a worker thread at every head and every ``interval`` seconds."""
        wake = self._wake = asyncio.Event()
        while not stop.is_set() and not self._stopped:
            wake.clear()
            try:
                await asyncio.to_thread(self.refresh)
            except Exception as exc:  # the next refresh tries again; the fences stay exact
                detail = str(exc).splitlines()[0] if str(exc) else ""
                log.warning("risk refresh failed: %s: %s", type(exc).__name__, detail)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), interval)

    def stop(self) -> None:
        """Record what is pending and that this instance stopped, and give the key up."""
        if self._wake is not None:
            self._wake.set()
        with self._io:
            self._stopped = True
            self._record_breaches()
            if self.writer and self._evaluate_due:
                self._evaluate(self.clock())
            if self.writer:
                self._persist("shadow", "engine stopped", self.clock())
            if self.lock is not None:
                self.lock.release()

    # --- internals ------------------------------------------------------------------------

    def _settle(self) -> Mode:
        """The mode from what is known in memory (call with ``_mem`` held)."""
        was_killed = self.state.kill_switch
        switch = self.kill_switch.state
        state = self.state
        if was_killed and not switch.engaged:
            state = replace(state, consecutive_failures=0)  # the operator's unkill resets the run
        mode = effective_mode(self.ceiling, self.schedule.stages[self.stage])
        reason: str | None = None
        if switch.engaged:
            mode, reason = "shadow", f"kill switch set by {switch.actor}: {switch.reason}"
        elif mode == "shadow":
            reason = (
                "configured mode is shadow"
                if self.ceiling == "shadow"
                else f"stage {self.stage} is a shadow stage"
            )
        elif self.lock is None:
            mode, reason = "shadow", "no signing key loaded"
        elif self.refused is not None:
            mode, reason = "shadow", self.refused
        elif not self.lock.fresh():
            problem = self._lock_problem
            mode, reason = (
                "shadow",
                f"lost the signer lock: {problem}" if problem else ("lost the signer lock"),
            )
        self.state = replace(state, mode=mode, kill_switch=switch.engaged, reason=reason)
        return mode

    def _measure(self, mode: Mode) -> None:
        """Mode, stage, kill switch, the day's gas and loss against the caps, the signer lock."""
        limits = stage_limits(self.limits, self.schedule.stages[self.stage])
        state, lock = self.state, self.lock
        record.mode(mode, self.stage)
        record.kill_switch(state.kill_switch)
        record.risk_day(
            gas_wei=state.gas_spent_wei,
            gas_cap_wei=limits.daily_gas_cap_wei,
            loss_wei=-state.realized_pnl_wei,
            loss_cap_wei=limits.daily_loss_cap_wei,
        )
        if lock is not None:
            held = lock.held
            record.signer_lock(
                self.key,
                epoch=lock.epoch if held else None,
                holder=lock.holder_id if held else None,
                refused=self.refused is not None,
            )

    def _lost_lock(self) -> None:
        with self._mem:
            self.state = replace(self.state, mode="shadow", reason="lost the signer lock")
        if self._wake is not None:
            self._wake.set()

    def _fence_io(self, lock: SignerLock) -> str | None:
        """Both reads on one read-only connection: it never waits for SQLite's write lock."""
        try:
            with lock.read_only.connect() as conn:
                switch = self.kill_switch.check(conn)
                held = not switch.engaged and lock.still_held(conn)
        except SQLAlchemyError as exc:
            return f"cannot read the signer lock: {str(exc).splitlines()[0]}"
        if switch.engaged:
            return f"kill switch set by {switch.actor}: {switch.reason}"
        return None if held else "lost the signer lock"

    def _apply_controls(self) -> None:
        """Operators' mode ceiling and limits (API or CLI), else the configured ones."""
        with self._reader() as session:
            controls = api_repo.get_controls(session, self.chain_id)
        ceiling, limits = self.configured
        with self._mem:
            self.ceiling = controls.ceiling_or(ceiling) if controls else ceiling
            self.limits = controls.limits_or(limits) if controls else limits

    def _record_breaches(self) -> None:
        """Write the breaches seen since the last refresh: the switch and the stage history."""
        with self._mem:
            breaches, self._breaches = self._breaches, []
        for reason, counters, at in breaches:
            self.kill_switch.engage(reason, actor=f"risk:{self.key}")
            if self.writer:
                with self.sessions.begin() as session:
                    rrepo.append_stage_history(
                        session,
                        self.chain_id,
                        self.key,
                        from_stage=self.stage,
                        to_stage=self.stage,
                        kind="breach",
                        reason=reason,
                        evidence=counters,
                        at=at,
                    )

    def _gate_due(self, now: datetime) -> bool:
        last = self._evaluated_at
        return last is None or now - last >= self.gate_interval or now < last

    def _evaluate(self, now: datetime) -> None:
        self._evaluated_at = now
        last = len(self.schedule.stages) - 1
        alerts = self.alerts() if self.stage < last else Alerts()  # before the transaction
        with self.sessions.begin() as session:
            quiet_hours = self.schedule.gate(min(max(self.stage, 0), last)).quiet_hours
            history = rrepo.load_stage_history(
                session, self.chain_id, self.key, now, quiet_hours, alerts
            )
            if history is None:
                return
            decision = evaluate_stage(history, self.schedule, now, ceiling=self.ceiling)
            self.last_decision = decision
            with self._mem:
                self.stage = decision.to_stage
            if decision.action == "stay":
                return
            kind = "promotion" if decision.action == "promote" else "demotion"
            rrepo.append_stage_history(
                session,
                self.chain_id,
                self.key,
                from_stage=decision.from_stage,
                to_stage=decision.to_stage,
                kind=kind,
                reason=decision.reason,
                evidence=decision.evidence,
                at=now,
            )
            stored = rrepo.get_risk_state(session, self.chain_id, self.key)
            rrepo.set_risk_state(
                session,
                self.chain_id,
                self.key,
                mode=stored.mode if stored else "shadow",
                stage=decision.to_stage,
                stage_entered_at=now,
                reason=decision.reason,
                at=now,
            )
            rrepo.audit(
                session,
                f"risk:{self.key}",
                kind,
                {"stage": decision.from_stage},
                {"stage": decision.to_stage, "reason": decision.reason},
                at=now,
            )

    def _persist(self, mode: Mode, reason: str | None, now: datetime) -> None:
        with self.sessions.begin() as session:
            stored = rrepo.get_risk_state(session, self.chain_id, self.key)
            if stored is not None and (stored.mode, stored.reason, stored.stage) == (
                mode,
                reason,
                self.stage,
            ):
                return
            rrepo.set_risk_state(
                session,
                self.chain_id,
                self.key,
                mode=mode,
                stage=self.stage,
                stage_entered_at=stored.stage_entered_at if stored else now,
                reason=reason,
                at=now,
            )

    def _counters(self) -> dict[str, Any]:
        s = self.state
        return {
            "day": s.day.isoformat(),
            "gas_spent_wei": str(s.gas_spent_wei),
            "realized_pnl_wei": str(s.realized_pnl_wei),
            "consecutive_failures": s.consecutive_failures,
        }
