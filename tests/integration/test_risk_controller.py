"""The risk controller end to end, the kill-switch signal, the risk commands and lease expiry, on
SQLite files (test_risk_store.py runs the storage underneath on SQLite and PostgreSQL).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from arbx.cli import risk as commands
from arbx.cli.args import Parser
from arbx.domain.limits import Limits
from arbx.domain.profit import Opportunity
from arbx.domain.routes import Route
from arbx.domain.stages import default_schedule
from arbx.risk.controller import RiskController
from arbx.risk.killswitch import KillSwitch, unkill
from arbx.risk.signer_lock import SignerLock
from arbx.store import api_repo, db, migrate, repo
from arbx.store import execution_repo as xrepo
from arbx.store import risk_repo as rrepo

pytestmark = pytest.mark.integration

CHAIN = 31337
KEY = "0x00000000000000000000000000000000000000Aa"
WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
POOL_A = "0x0000000000000000000000000000000000000A01"
POOL_B = "0x0000000000000000000000000000000000000B02"
T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A SQLite file migrated to head."""
    url = f"sqlite:///{tmp_path / 'data' / 'arbx.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on the database."""
    eng = db.make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions on the database."""
    return db.make_session_factory(engine)


@pytest.fixture
def run_id(factory: sessionmaker[Session]) -> int:
    """A run on the test chain."""
    with factory.begin() as s:
        repo.upsert_chain(s, CHAIN, "devnet")
        return repo.start_run(s, CHAIN, mode="limited", started_at=T0)


class Clock:
    """A settable clock for leases and days."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def opportunity(amount_in: int = 10**16, gas_cost: int = 10**14) -> Opportunity:
    """A WETH cycle."""
    route = Route(pools=(POOL_A, POOL_B), zero_for_one=(True, False), tokens=(WETH, USDC, WETH))
    return Opportunity(route, amount_in, (5, amount_in + 10**15), 10**15, 1, gas_cost, 0, 10**14)


# --- lease expiry and the signal ---------------------------------------------------------------


def test_sqlite_lease_expiry_lets_another_take_over_with_a_new_epoch(db_url: str) -> None:
    url = db_url
    clock = Clock(T0)
    engines = [db.make_engine(url), db.make_engine(url)]
    old = SignerLock(engines[0], KEY, holder_id="old", lease_seconds=30, clock=clock)
    new = SignerLock(engines[1], KEY, holder_id="new", lease_seconds=30, clock=clock)
    try:
        assert old.acquire() is None
        clock.now += timedelta(seconds=20)
        assert old.renew()  # lease now ends at T0 + 50 s
        clock.now += timedelta(seconds=24)
        assert old.still_held()  # 6 s left, more than the 5 s margin
        assert new.acquire() is not None
        clock.now += timedelta(seconds=2)
        assert not old.still_held()  # 4 s left, inside the margin: no more signatures
        assert new.acquire() is not None  # but not expired: nobody may take it yet
        clock.now += timedelta(seconds=5)
        assert new.acquire() is None
        assert (old.epoch, new.epoch) == (None, 2)
        assert not old.renew()
        assert new.still_held()
        # The old holder comes back: refused, and told who holds the key now.
        reason = old.acquire()
        assert reason is not None
        assert "held by holder new" in reason
        assert "epoch 2" in reason
    finally:
        for lock in (old, new):
            lock.release()
        for e in engines:
            e.dispose()


@pytest.mark.asyncio
async def test_keep_alive_renews_the_lease_until_stopped(db_url: str) -> None:
    clock = Clock(T0)
    engine = db.make_engine(db_url)
    lock = SignerLock(engine, KEY, holder_id="a", lease_seconds=30, clock=clock)
    try:
        assert lock.acquire() is None
        stop = asyncio.Event()
        task = asyncio.create_task(lock.keep_alive(stop, interval=0.01))
        for _ in range(5):  # 100 s of fake time, 20 s at a time: only renewals keep it alive
            clock.now += timedelta(seconds=20)
            await asyncio.sleep(0.1)
            assert lock.still_held()
        stop.set()
        await asyncio.wait_for(task, timeout=2)
        clock.now += timedelta(seconds=31)
        assert not lock.still_held()
    finally:
        lock.release()
        engine.dispose()


def test_sigusr1_stops_at_once_and_is_persisted(factory: sessionmaker[Session]) -> None:
    switch = KillSwitch(factory, CHAIN)
    previous = signal.getsignal(signal.SIGUSR1)
    switch.install()
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert switch.engaged  # in-process, before any database round trip
        state = switch.poll()
        assert state.engaged
        assert state.reason is not None
        assert state.reason.startswith("signal SIGUSR1")
        other = KillSwitch(factory, CHAIN)
        assert other.poll().engaged
        unkill(factory, CHAIN, "cli:alice")
        assert not switch.poll().engaged  # once persisted, the database decides
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_an_unreadable_kill_switch_counts_as_engaged(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'never-migrated.db'}")
    try:
        switch = KillSwitch(db.make_session_factory(engine), CHAIN)
        state = switch.poll()
        assert state.engaged
        assert state.reason is not None
        assert state.reason.startswith("cannot read the kill switch: no such table")
    finally:
        engine.dispose()


# --- the controller, end to end ---------------------------------------------------------------


# The gate out of shadow asks for nothing observed (test_stage_gates.py measures the gates).
OPEN = replace(
    default_schedule(),
    promotion=replace(
        default_schedule().promotion, min_blocks=0, min_parity_checks=0, max_latency_p99_ms=None
    ),
)


def controller(
    engine: Engine, holder: str, clock: Clock, ceiling: str = "limited"
) -> RiskController:
    """A controller on its own lock for KEY, with small limits and an open shadow gate."""
    sessions = db.make_session_factory(engine)
    return RiskController(
        sessions,
        chain_id=CHAIN,
        key_address=KEY,
        ceiling=ceiling,  # type: ignore[arg-type]
        limits=Limits(daily_gas_cap_wei=10**16, daily_loss_cap_wei=10**16),
        schedule=OPEN,
        lock=SignerLock(engine, KEY, holder_id=holder, clock=clock),
        clock=clock,
    )


def test_controller_one_signer_breach_to_shadow_and_restart(db_url: str, run_id: int) -> None:
    clock = Clock(T0)
    engines = [db.make_engine(db_url) for _ in range(3)]
    first = controller(engines[0], "first", clock)
    second = controller(engines[1], "second", clock)
    try:
        assert first.start() == "limited"
        assert (first.stage, first.reason) == (1, None)
        assert second.start() == "shadow"
        assert second.reason is not None
        assert "is held by holder first" in second.reason
        assert first.may_sign(opportunity()).allowed
        over = first.may_sign(opportunity(amount_in=10**17 + 1))  # stage 1 caps at 0.1
        assert not over.allowed
        assert "over the cap" in over.reason
        assert not second.may_sign(opportunity()).allowed

        clock.now += timedelta(seconds=20)  # within the 30 s lease, never renewed here
        with first.sessions.begin() as s:  # what the bundle tracker stores as a bundle settles
            bundle = xrepo.record_bundle(
                s,
                run_id,
                target_block=9,
                builders=["b"],
                tx_hashes=["0x1"],
                expected_net_profit=10**14,
                signer=KEY,
                sent_at=clock.now,
            )
            xrepo.update_bundle_outcome(
                s, bundle, "included", gas_cost=2 * 10**16, realized_profit=0, settled_at=clock.now
            )
        breach = first.on_outcome("included", 2 * 10**16, 0)
        assert breach is not None
        assert "daily gas cap" in breach
        assert first.mode == "shadow"  # at once, before anything is written
        assert not first.may_sign(opportunity()).allowed
        first.refresh()  # the worker records the breach, which demotes the stage
        assert (first.mode, first.stage) == ("shadow", 0)
        assert first.reason is not None
        assert first.reason.startswith(f"kill switch set by risk:{KEY.lower()}")
        assert second.refresh() == "shadow"  # the other instance sees the switch too
        with first.sessions() as s:
            kinds = [h.kind for h in rrepo.list_stage_history(s, CHAIN, KEY)]
            stored = rrepo.get_risk_state(s, CHAIN, KEY)
        assert kinds == ["promotion", "breach", "demotion"]
        assert stored is not None
        assert (stored.mode, stored.stage) == ("shadow", 0)
        first.stop()
        second.stop()

        # A restart: the stage and the switch persist; after unkill the quiet hours still hold.
        clock.now += timedelta(hours=1)
        again = controller(engines[2], "third", clock)
        assert again.start() == "shadow"
        assert again.reason is not None
        assert again.reason.startswith("kill switch set by risk")
        unkill(again.sessions, CHAIN, "cli:alice")
        assert again.refresh() == "shadow"
        assert again.reason == "stage 0 is a shadow stage"
        assert again.state.gas_spent_wei == 2 * 10**16  # today's gas was read back
        again.stop()
        clock.now += timedelta(hours=24)
        later = controller(engines[2], "fourth", clock)
        assert later.start() == "limited"
        assert later.state.gas_spent_wei == 0  # a new UTC day
        later.stop()
    finally:
        for e in engines:
            e.dispose()


def test_stored_controls_only_ever_lower_the_mode_and_the_limits(db_url: str, run_id: int) -> None:
    clock = Clock(T0)
    engine = db.make_engine(db_url)
    risk = controller(engine, "only", clock)
    try:
        with risk.sessions.begin() as s:  # the key sits at the scaled stage already
            rrepo.set_risk_state(
                s, CHAIN, KEY, mode="limited", stage=3, stage_entered_at=T0, reason=None, at=T0
            )
            # Controls stored above the settings (written before they were lowered, or by hand)
            api_repo.set_controls(
                s,
                CHAIN,
                actor="cli:old",
                mode_ceiling="scaled",
                limits=Limits(
                    max_input={"*": 10**30},
                    daily_gas_cap_wei=10**30,
                    daily_loss_cap_wei=10**30,
                    max_consecutive_failures=1000,
                ),
            )
        assert risk.start() == "limited"  # configured limited: scaled is never reached
        assert risk.ceiling == "limited"
        assert risk.limits.daily_gas_cap_wei == 10**16
        assert risk.limits.max_consecutive_failures == 5
        assert not risk.may_sign(opportunity(gas_cost=10**16 + 1)).allowed  # the settings' gas cap
        with risk.sessions.begin() as s:  # an operator lowers the ceiling: it holds
            api_repo.set_controls(s, CHAIN, actor="api:ops", mode_ceiling="shadow")
        assert risk.refresh() == "shadow"
        risk.stop()
    finally:
        engine.dispose()


# --- commands ---------------------------------------------------------------------------------


def test_kill_unkill_and_risk_commands(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ARBX_DATABASE_URL", db_url)
    parser = Parser(prog="arbx")
    commands.register(parser.add_subparsers(dest="command", required=True, parser_class=Parser))

    def run(*argv: str) -> str:
        args = parser.parse_args(argv)
        assert args.handler(args) == 0
        return capsys.readouterr().out

    assert (
        run("kill", "--reason", "fat finger")
        == f"kill switch engaged for chain {CHAIN}: fat finger\n"
    )
    status = run("risk")
    assert "ENGAGED" in status
    assert "fat finger" in status
    assert "kill switch released for chain" in run("unkill")
    run("kill", "--all-chains")
    assert "still engaged" in run("unkill", "--chain", str(CHAIN))
    assert "ENGAGED" in run("risk", "--chain", "5")
    run("unkill", "--all-chains")
    assert run("risk").startswith("kill switch: released")
