"""The engine's risk gate for one key on one chain: mode, stage, limits, kill switch, signer lock.

The executor calls ``start`` once, ``on_block`` at every head (before sending anything),
``may_sign`` before every signature and ``on_outcome`` when a bundle settles; ``stop`` at the end.

- The mode is shadow unless the configured mode (the ceiling), the current stage, the kill switch
  and the signer lock all allow a live one; ``reason`` says which one did not.
- Only the instance that holds the signer lock writes the key's risk state and stage history: a
  second instance with the same key stays in shadow, says why, and changes nothing. It does not
  retry; an instance that held the lock and lost it (a broken connection, a missed renewal) tries
  to take it back at the next block.
- A limit breach engages the chain's kill switch (actor ``risk:<key>``) and is recorded in the
  stage history, which demotes the stage; ``arbx unkill`` resumes trading and resets this run's
  failure count. Daily gas and realized profit are read back from the store at start, so a
  restart does not reset the day's limits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, time
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from arbx.domain.limits import (
    Decision,
    Limits,
    Outcome,
    RiskState,
    check_trade,
    record_outcome,
    utc_day,
)
from arbx.domain.modes import Mode
from arbx.domain.profit import Opportunity
from arbx.domain.stages import Schedule, StageDecision, effective_mode, evaluate_stage, stage_limits
from arbx.risk.killswitch import KillSwitch
from arbx.risk.signer_lock import SignerLock
from arbx.store import execution_repo as xrepo
from arbx.store import risk_repo as rrepo


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
    ) -> None:
        self.sessions = sessions
        self.chain_id = chain_id
        self.key = key_address.lower()
        self.ceiling = ceiling
        self.limits = limits
        self.schedule = schedule
        self.lock = lock
        self.kill_switch = kill_switch or KillSwitch(sessions, chain_id)
        self.clock = clock
        self.stage = 0
        self.state = RiskState(day=utc_day(clock()))
        self.refused: str | None = None  # why the lock was refused at start: read-only run
        self.last_decision: StageDecision | None = None

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
        return self._refresh(now)

    def on_block(self) -> Mode:
        """Poll the kill switch, renew the lock, and settle the mode; call at every head."""
        now = self.clock()
        if self.lock is not None and self.lock.held:
            self.lock.renew()  # also while killed: the key stays ours until we stop
        return self._refresh(now)

    def may_sign(self, opportunity: Opportunity, *, gas_cost_wei: int | None = None) -> Decision:
        """Whether this trade may be signed now: limits, kill switch, then the lock itself."""
        if self.kill_switch.engaged:
            return Decision(False, f"kill switch set: {self.kill_switch.state.reason}")
        limits = stage_limits(self.limits, self.schedule.stages[self.stage])
        decision = check_trade(
            opportunity, self.state, limits, at=self.clock(), gas_cost_wei=gas_cost_wei
        )
        if not decision.allowed:
            return decision
        if self.lock is None or not self.lock.still_held():
            self.state = replace(self.state, mode="shadow", reason="lost the signer lock")
            return Decision(False, "lost the signer lock")
        return decision

    def on_outcome(self, outcome: Outcome, gas_cost: int, realized_pnl: int) -> str | None:
        """Count a settled bundle; on a breach, stop and record it. -> the breach or None."""
        now = self.clock()
        limits = stage_limits(self.limits, self.schedule.stages[self.stage])
        state, breach = record_outcome(self.state, outcome, gas_cost, realized_pnl, limits, at=now)
        self.state = state
        if breach is not None:
            self.kill_switch.engage(breach, actor=f"risk:{self.key}")
            if self.writer:
                with self.sessions.begin() as session:
                    rrepo.append_stage_history(
                        session,
                        self.chain_id,
                        self.key,
                        from_stage=self.stage,
                        to_stage=self.stage,
                        kind="breach",
                        reason=breach,
                        evidence=self._counters(),
                        at=now,
                    )
        if self.writer:
            self._evaluate(now)
        self._refresh(now)
        return breach

    def stop(self) -> None:
        """Record that this instance stopped and give the key up."""
        if self.writer:
            self._persist("shadow", "engine stopped", self.clock())
        if self.lock is not None:
            self.lock.release()

    # --- internals ------------------------------------------------------------------------

    def _refresh(self, now: datetime) -> Mode:
        was_killed = self.state.kill_switch
        switch = self.kill_switch.poll()
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
        elif not self.lock.still_held():
            again = self.lock.acquire()
            if again is not None:
                mode, reason = "shadow", f"lost the signer lock: {again}"
        self.state = replace(state, mode=mode, kill_switch=switch.engaged, reason=reason)
        if self.writer:
            self._persist(mode, reason, now)
        return mode

    def _evaluate(self, now: datetime) -> None:
        with self.sessions.begin() as session:
            history = rrepo.load_stage_history(
                session, self.chain_id, self.key, now, self.schedule.promotion.quiet_hours
            )
            if history is None:
                return
            decision = evaluate_stage(history, self.schedule, now, ceiling=self.ceiling)
            self.last_decision = decision
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
