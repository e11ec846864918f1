"""Execution and risk storage on SQLite and on the local PostgreSQL server: migration 0002, the
one-signer-per-key lock, the kill switch, persisted risk state and stages, and bundle numbers.

PostgreSQL: a fresh database per test session on ``$ARBX_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``), dropped at the end; each test starts from an
empty schema (the fixtures are those of test_store.py, copied).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from arbx.domain.errors import ConfigError, InputError
from arbx.domain.limits import Limits
from arbx.domain.stages import default_schedule
from arbx.errors import SignerLockLostError, SimulationRevertedError
from arbx.risk.controller import RiskController
from arbx.risk.killswitch import ALL_CHAINS, KillSwitch, kill, unkill
from arbx.risk.signer_lock import SignerLock, advisory_key
from arbx.store import db, migrate, repo
from arbx.store import execution_repo as xrepo
from arbx.store import risk_repo as rrepo
from arbx.store.models import AuditLog, TransactionRow
from tests.integration.databases import conninfo

pytestmark = pytest.mark.integration

CHAIN = 31337
KEY = "0x00000000000000000000000000000000000000Aa"
WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
POOL_A = "0x0000000000000000000000000000000000000A01"
POOL_B = "0x0000000000000000000000000000000000000B02"
T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
# The gate out of shadow asks for nothing observed (test_stage_gates.py measures the gates).
OPEN = replace(
    default_schedule(),
    promotion=replace(
        default_schedule().promotion, min_blocks=0, min_parity_checks=0, max_latency_p99_ms=None
    ),
)


# --- fixtures (as in test_store.py) -----------------------------------------------------------


@pytest.fixture
def run_id(factory: sessionmaker[Session]) -> int:
    """A run on the test chain."""
    with factory.begin() as s:
        repo.upsert_chain(s, CHAIN, "devnet")
        return repo.start_run(s, CHAIN, mode="limited", started_at=T0)


# --- migration --------------------------------------------------------------------------------


def test_migration_0002_upgrades_from_0001_and_downgrades_keeping_old_data(db_url: str) -> None:
    migrate.upgrade(db_url, "0001")
    engine = db.make_engine(db_url)
    try:
        with db.make_session_factory(engine).begin() as s:
            repo.upsert_chain(s, CHAIN, "devnet")
            old_run = repo.start_run(s, CHAIN, started_at=T0)
        assert "bundles" not in inspect(engine).get_table_names()
        migrate.upgrade(db_url, "0002")
        assert migrate.current(db_url) == "0002"
        new = {"bundles", "transactions", "risk_state", "kill_switch", "stage_history"}
        new |= {"signer_leases", "audit_log"}
        assert new <= set(inspect(engine).get_table_names())
        assert {i["name"] for i in inspect(engine).get_indexes("bundles")} >= {
            "ix_bundles_run_id_id",
            "ix_bundles_signer_sent_at",
            "ix_bundles_status",
        }
        with db.make_session_factory(engine).begin() as s:
            bundle = xrepo.record_bundle(
                s, old_run, target_block=1, builders=[], tx_hashes=[], expected_net_profit=1
            )
            assert bundle > 0
        migrate.downgrade(db_url, "0001")
        assert migrate.current(db_url) == "0001"
        inspect_after = inspect(engine)
        assert not new & set(inspect_after.get_table_names())
        with engine.connect() as conn:
            assert conn.execute(text("select id from runs")).scalar_one() == old_run
        migrate.upgrade(db_url)
        assert migrate.current(db_url) == migrate.head() == "0008"
    finally:
        engine.dispose()


# --- signer lock ------------------------------------------------------------------------------


def test_a_second_instance_with_the_same_key_is_refused_with_a_reason(db_url: str) -> None:
    migrate.upgrade(db_url)
    first_engine, second_engine = db.make_engine(db_url), db.make_engine(db_url)
    first = SignerLock(first_engine, KEY, holder_id="pod-a")
    second = SignerLock(second_engine, KEY.lower(), holder_id="pod-b")
    other_key = SignerLock(second_engine, "0x" + "bb" * 20, holder_id="pod-b")
    try:
        assert first.acquire() is None
        assert first.epoch == 1
        first.require()
        reason = second.acquire()
        assert reason is not None
        assert reason.startswith(f"key {KEY.lower()} is held by holder pod-a since ")
        assert "epoch 1" in reason
        assert not second.held
        assert not second.still_held()
        assert first.still_held()
        assert first.renew()
        assert first.acquire() is None  # idempotent for the holder
        assert other_key.acquire() is None  # another key is another lock
        first.release()
        assert not first.still_held()
        with pytest.raises(SignerLockLostError, match="does not hold the signer lock") as lost:
            first.require()
        assert not isinstance(lost.value, ConfigError | SimulationRevertedError)
        assert second.acquire() is None
        assert second.epoch == 2
        assert second.still_held()
        assert first.acquire() is not None
    finally:
        for lock in (first, second, other_key):
            lock.release()
        first_engine.dispose()
        second_engine.dispose()


def test_postgres_lock_is_released_when_the_holder_connection_ends(
    postgres_database: str,
) -> None:
    url = postgres_database
    migrate.upgrade(url)
    holder_engine, other_engine = db.make_engine(url), db.make_engine(url)
    holder = SignerLock(holder_engine, KEY, holder_id="holder")
    other = SignerLock(other_engine, KEY, holder_id="other")
    try:
        assert holder.acquire() is None
        reason = other.acquire()
        assert reason is not None
        assert "held by holder holder" in reason
        assert "database session pid" in reason
        # The lock lives outside the pool: disposing the holder's engine does not drop it.
        holder_engine.dispose()
        assert holder.still_held()
        with psycopg.connect(conninfo(url), autocommit=True) as admin:
            pids = admin.execute(
                "select pid from pg_locks where locktype = 'advisory' and granted"
            ).fetchall()
            assert len(pids) == 1
            admin.execute("select pg_terminate_backend(%s)", pids[0])
        deadline = time.monotonic() + 5
        while other.acquire() is not None:
            assert time.monotonic() < deadline, "the lock outlived its connection"
            time.sleep(0.05)
        assert not holder.still_held()
        assert not holder.held
        assert other.still_held()
    finally:
        holder.release()
        other.release()
        holder_engine.dispose()
        other_engine.dispose()


# --- kill switch ------------------------------------------------------------------------------


def test_kill_switch_set_by_command_is_seen_by_a_polling_reader(
    engine: Engine, db_url: str
) -> None:
    writer = db.make_session_factory(engine)
    reader_engine = db.make_engine(db_url)
    try:
        switch = KillSwitch(db.make_session_factory(reader_engine), CHAIN)
        assert not switch.poll().engaged
        kill(writer, CHAIN, "bad fills", "cli:alice")
        assert not switch.engaged  # not before the next poll
        seen = switch.poll()
        assert (seen.engaged, seen.reason, seen.actor) == (True, "bad fills", "cli:alice")
        assert switch.engaged
        unkill(writer, CHAIN, "cli:alice")
        assert not switch.poll().engaged
        # The all-chains switch stops every chain, and a chain's own release does not lift it.
        kill(writer, ALL_CHAINS, "maintenance", "cli:bob")
        assert switch.poll().reason == "maintenance"
        assert unkill(writer, CHAIN, "cli:alice").engaged
        assert KillSwitch(writer, 1).poll().engaged
        unkill(writer, ALL_CHAINS, "cli:bob")
        assert not switch.poll().engaged
        with writer() as s:
            actions = [(a.actor, a.action) for a in reversed(rrepo.list_audit(s))]
            first = s.scalars(select(AuditLog).order_by(AuditLog.id)).first()
        assert actions == [
            ("cli:alice", "kill"),
            ("cli:alice", "unkill"),
            ("cli:bob", "kill"),
            ("cli:alice", "unkill"),
            ("cli:bob", "unkill"),
        ]
        assert first is not None
        assert first.before_json is not None
        assert first.after_json is not None
        assert (first.before_json["engaged"], first.after_json["engaged"]) == (False, True)
    finally:
        reader_engine.dispose()


# --- risk state, stage history, bundles -------------------------------------------------------


def test_risk_state_and_stage_history_survive_a_restart(db_url: str) -> None:
    migrate.upgrade(db_url)
    first = db.make_engine(db_url)
    with db.make_session_factory(first).begin() as s:
        rrepo.set_risk_state(
            s, CHAIN, KEY, mode="limited", stage=1, stage_entered_at=T0, reason="go", at=T0
        )
        rrepo.append_stage_history(
            s, CHAIN, KEY, from_stage=0, to_stage=1, kind="promotion", reason="go", at=T0
        )
        rrepo.append_stage_history(
            s,
            CHAIN,
            KEY,
            from_stage=1,
            to_stage=1,
            kind="breach",
            reason="gas",
            evidence={"gas_spent_wei": str(2**100)},
            at=T0 + timedelta(hours=1),
        )
        with pytest.raises(InputError, match="unknown stage history kind"):
            rrepo.append_stage_history(
                s, CHAIN, KEY, from_stage=0, to_stage=1, kind="x", reason="?"
            )
        with pytest.raises(InputError, match="unknown mode"):
            rrepo.set_risk_state(
                s, CHAIN, KEY, mode="yolo", stage=0, stage_entered_at=T0, reason=None
            )
    first.dispose()

    second = db.make_engine(db_url)
    try:
        with db.make_session_factory(second).begin() as s:
            state = rrepo.get_risk_state(s, CHAIN, KEY.upper().replace("0X", "0x"))
            assert state is not None
            assert (state.mode, state.stage, state.stage_entered_at, state.reason) == (
                "limited",
                1,
                T0,
                "go",
            )
            assert rrepo.get_risk_state(s, CHAIN + 1, KEY) is None
            history = rrepo.list_stage_history(s, CHAIN, KEY)
            assert [(h.kind, h.from_stage, h.to_stage) for h in history] == [
                ("promotion", 0, 1),
                ("breach", 1, 1),
            ]
            assert history[1].evidence == {"gas_spent_wei": str(2**100)}
            rrepo.set_risk_state(
                s, CHAIN, KEY, mode="shadow", stage=0, stage_entered_at=T0, reason="demoted"
            )
            loaded = rrepo.load_stage_history(s, CHAIN, KEY, T0 + timedelta(hours=2), 24)
            assert loaded is not None
            assert (loaded.stage, loaded.breaches) == (0, [T0 + timedelta(hours=1)])
        with db.make_session_factory(second)() as s:
            assert [r.mode for r in rrepo.list_risk_states(s, CHAIN)] == ["shadow"]
    finally:
        second.dispose()


def test_bundle_summary_counts_outcomes_and_sums_included_profits_exactly(
    factory: sessionmaker[Session], run_id: int
) -> None:
    big = 2**200
    outcomes = [
        ("included", big, big - 7),
        ("included", 10, -3),
        ("included", 5, None),  # included, realized not known yet
        ("not_included", 10**18, None),
        ("not_included", 1, None),
        ("reverted", 2, -(10**15)),
        ("state_moved", 3, None),
        ("sim_failed", 4, None),
        ("sent", 99, None),
    ]
    with factory.begin() as s:
        other_run = repo.start_run(s, CHAIN, started_at=T0)
        xrepo.record_bundle(
            s, other_run, target_block=1, builders=["x"], tx_hashes=[], expected_net_profit=1
        )
        for i, (status, expected, realized) in enumerate(outcomes):
            bundle_id = xrepo.record_bundle(
                s,
                run_id,
                target_block=100 + i,
                builders=["flashbots", "titan"],
                tx_hashes=[f"0x{i:064x}"],
                expected_net_profit=expected,
                signer=KEY,
                replacement_uuid=str(uuid.uuid4()),
                sent_at=T0,
            )
            if status != "sent":
                xrepo.update_bundle_outcome(
                    s,
                    bundle_id,
                    status,
                    included_block=100 + i if status in ("included", "reverted") else None,
                    gas_used=150_000 if realized is not None else None,
                    gas_cost=10**14 if realized is not None else None,
                    realized_profit=realized,
                    settled_at=T0 + timedelta(seconds=12),
                )
    with factory() as s:
        summary = xrepo.bundle_summary(s, run_id)
        fields = xrepo.report_fields(s, run_id)
        bundles = xrepo.list_bundles(s, run_id)
    assert summary == {
        "sent": 9,
        "pending": 1,
        "included": 3,
        "not_included": 2,
        "reverted": 1,
        "state_moved": 1,
        "sim_failed": 1,
        "included_expected_net_profit_wei": big + 15,
        "included_realized_profit_wei": big - 10,
    }
    assert fields["bundles"] == summary
    assert fields["included_realized_profit_wei"] == big - 10
    assert fields["included_expected_net_profit_wei"] == big + 15
    lines = xrepo.report_lines(fields)
    assert "9 sent, 3 included" in lines[0]
    assert lines[2].endswith(f"{big - 10} wei")
    assert bundles[0].builders_json == ["flashbots", "titan"]
    assert bundles[0].signer == KEY.lower()
    assert bundles[0].settled_at == T0 + timedelta(seconds=12)
    assert bundles[-1].settled_at is None
    with factory() as s:
        empty = xrepo.bundle_summary(s, run_id + 100)
    assert empty["sent"] == empty["included_realized_profit_wei"] == 0
    with factory.begin() as s, pytest.raises(InputError, match="unknown bundle status"):
        xrepo.update_bundle_outcome(s, bundles[0].id, "landed")
    with factory.begin() as s, pytest.raises(InputError, match="no bundle"):
        xrepo.update_bundle_outcome(s, 10**9, "included")


def test_transactions_and_daily_totals(factory: sessionmaker[Session], run_id: int) -> None:
    tx = xrepo.TxRecord(
        hash="0x" + "ab" * 32,
        nonce=7,
        from_address=KEY,
        to_address=POOL_A,
        gas_limit=400_000,
        max_fee=2**130,
        priority_fee=10**9,
    )
    day = datetime(2025, 3, 1, tzinfo=UTC)
    with factory.begin() as s:
        ids = []
        for n, settled in enumerate((day - timedelta(seconds=1), day, day + timedelta(hours=5))):
            b = xrepo.record_bundle(
                s,
                run_id,
                target_block=n,
                builders=[],
                tx_hashes=[tx.hash],
                expected_net_profit=10,
                signer=KEY,
                sent_at=settled,
            )
            xrepo.record_tx(s, b, tx)  # the same signed transaction, resent for the next block
            xrepo.update_bundle_outcome(
                s,
                b,
                "included",
                gas_cost=10**15 * (n + 1),
                realized_profit=-(10**14) * (n + 1),
                settled_at=settled,
            )
            ids.append(b)
        xrepo.update_tx(s, ids[2], tx.hash, "included", gas_used=120_000, effective_gas_price=3)
    with factory() as s:
        rows = s.scalars(select(TransactionRow).order_by(TransactionRow.id)).all()
        assert [r.bundle_id for r in rows] == ids
        assert rows[0].max_fee == 2**130
        assert (rows[2].status, rows[2].gas_used, rows[2].effective_gas_price) == (
            "included",
            120_000,
            3,
        )
        assert xrepo.daily_totals(s, CHAIN, KEY, day) == (5 * 10**15, -5 * 10**14)
        assert xrepo.daily_totals(s, CHAIN + 1, KEY, day) == (0, 0)
        evidence = xrepo.stage_evidence(s, CHAIN, KEY, day)
        assert [e.realized_profit for e in evidence] == [-2 * 10**14, -3 * 10**14]
    with pytest.raises(IntegrityError), factory.begin() as s:
        xrepo.record_tx(s, ids[0], tx)
    with factory.begin() as s, pytest.raises(InputError, match="no transaction"):
        xrepo.update_tx(s, ids[0], "0x00", "dropped")


# --- the risk controller's fences --------------------------------------------------------------


def test_the_fences_read_the_kill_switch_and_the_signer_lock_from_the_database(
    db_url: str, engine: Engine, factory: sessionmaker[Session]
) -> None:
    key = "0x" + uuid.uuid4().hex + "00000000"
    lock = SignerLock(engine, key, holder_id="engine")
    risk = RiskController(
        factory,
        chain_id=CHAIN,
        key_address=key,
        ceiling="limited",
        limits=Limits(),
        schedule=OPEN,
        lock=lock,
    )
    other_engine = db.make_engine(db_url)
    ahead = timedelta(minutes=5)  # a lease of ours looks long over to this one
    other = SignerLock(
        other_engine, key, holder_id="other", clock=lambda: datetime.now(UTC) + ahead
    )
    try:
        risk.start()
        assert asyncio.run(risk.fence()) is None
        kill(factory, CHAIN, "from the command line", "cli:ops")  # another process writes it
        assert not risk.kill_switch.engaged  # this process has not read it yet
        assert asyncio.run(risk.fence()) == "kill switch set by cli:ops: from the command line"
        assert risk.kill_switch.engaged  # and now knows
        unkill(factory, CHAIN, "cli:ops")
        assert risk.refresh() == "limited"
        assert asyncio.run(risk.fence()) is None
        if engine.dialect.name == "postgresql":  # the lock's connection dies
            low = advisory_key(key) & 0xFFFFFFFF
            with psycopg.connect(conninfo(db_url), autocommit=True) as admin:
                admin.execute(
                    "select pg_terminate_backend(pid) from pg_locks"
                    " where locktype = 'advisory' and granted and objid = %s::oid",
                    (low,),
                )
            deadline = time.monotonic() + 5
            while other.acquire() is not None:
                assert time.monotonic() < deadline, "the lock outlived its connection"
                time.sleep(0.05)
        else:  # another instance takes over a lease it sees as expired
            assert other.acquire() is None
        assert lock.fresh()  # nothing in memory says so
        assert asyncio.run(risk.fence()) == "lost the signer lock"
        assert not lock.held
        assert risk.mode == "shadow"
    finally:
        risk.stop()
        other.release()
        other_engine.dispose()
