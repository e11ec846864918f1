"""The storage layer on SQLite and on the local PostgreSQL server: migrations, exact amounts,
idempotent upserts, reorg marking and the run report.

PostgreSQL: a fresh database per test session on ``$ARBX_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``), dropped at the end. Each test starts from
an empty schema. An unreachable server fails the tests: it is part of the test environment.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, event, inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from arbx.domain.errors import ConfigError, InputError
from arbx.domain.pools import Token, V2Pool, V3Pool
from arbx.domain.profit import Opportunity
from arbx.domain.routes import Route
from arbx.store import db, migrate, repo
from arbx.store.models import (
    Base,
    Block,
    OpportunityRow,
    PoolRow,
    Run,
    TokenRow,
    decode_sortable,
    encode_sortable,
)

pytestmark = pytest.mark.integration

UINT256_MAX = 2**256 - 1
CHAIN = 31337
WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
DAI = "0x6B175474E89094C44Da98b954EedeAC495271d0F"
POOL_A = "0x0000000000000000000000000000000000000A01"
POOL_B = "0x0000000000000000000000000000000000000B02"
POOL_C = "0x0000000000000000000000000000000000000C03"
T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def chain_row(factory: sessionmaker[Session]) -> int:
    """The test chain, stored."""
    with factory.begin() as s:
        repo.upsert_chain(s, CHAIN, "devnet")
    return CHAIN


# --- helpers ----------------------------------------------------------------------------------


def header(number: int, chain_id: int = CHAIN, fork: str = "a") -> repo.BlockHeader:
    """A block header with a hash derived from its number and fork."""
    return repo.BlockHeader(
        chain_id=chain_id,
        number=number,
        hash=_hash(number, fork),
        parent_hash=_hash(number - 1, fork),
        timestamp=1_700_000_000 + 12 * number,
    )


def _hash(number: int, fork: str) -> str:
    return "0x" + f"{fork}{number}".encode().hex().rjust(64, "0")


ROUTE_A = Route(pools=(POOL_A, POOL_B), zero_for_one=(True, False), tokens=(WETH, USDC, WETH))
ROUTE_B = Route(
    pools=(POOL_A, POOL_C, POOL_B), zero_for_one=(False, True, True), tokens=(WETH, DAI, USDC, WETH)
)


def opportunity(route: Route, net: int, amount_in: int = 10**18) -> Opportunity:
    """An opportunity whose numbers add up: amounts, gross, gas, builder, net."""
    gas_cost, builder = 1_000, 7
    gross = net + gas_cost + builder
    amounts = (amount_in, *(amount_in + i for i in range(1, len(route.pools))), amount_in + gross)
    return Opportunity(
        route=route,
        amount_in=amount_in,
        amounts=amounts[1:],
        gross_profit=gross,
        gas_units=180_000,
        gas_cost=gas_cost,
        builder_payment=builder,
        net_profit=net,
    )


def start(
    factory: sessionmaker[Session], mode: str = "shadow", settings: dict[str, object] | None = None
) -> int:
    """A new run on the test chain, started at T0."""
    with factory.begin() as s:
        return repo.start_run(s, CHAIN, mode=mode, settings=settings, started_at=T0)


# --- pure pieces ------------------------------------------------------------------------------


def test_sortable_encoding_keeps_integer_order() -> None:
    rng = random.Random(7)
    values = [0, 1, -1, UINT256_MAX, -(2**255), 2**255 - 1, 10**77, -(10**77)]
    values += [rng.randrange(-(2**256), 2**256) for _ in range(300)]
    encoded = [encode_sortable(v) for v in values]
    assert all(len(e) <= 79 for e in encoded)
    assert [decode_sortable(e) for e in encoded] == values
    assert sorted(encoded) == [encode_sortable(v) for v in sorted(values)]


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert repo.percentile(values, 50) == 50.0
    assert repo.percentile(values, 90) == 90.0
    assert repo.percentile(values, 99) == 99.0
    assert repo.percentile([3.0], 99) == 3.0
    assert repo.percentile([], 50) is None
    with pytest.raises(ValueError, match="percentile"):
        repo.percentile(values, 0)


def test_route_key_names_pools_and_directions() -> None:
    key = repo.route_key(ROUTE_B)
    assert key == f"{POOL_A}>{POOL_C}>{POOL_B}|011"
    assert repo.route_key_pools(key) == [POOL_A, POOL_C, POOL_B]


def test_database_url_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert db.database_url({}) == "sqlite:///./data/arbx.db"
    assert db.database_url({"ARBX_DATABASE_URL": "  "}) == "sqlite:///./data/arbx.db"
    assert (
        db.database_url({"ARBX_DATABASE_URL": "postgresql://u:p%40x@h:5433/arbx"})
        == "postgresql+psycopg://u:p%40x@h:5433/arbx"
    )
    assert db.database_url({"ARBX_DATABASE_URL": "postgres://h/arbx"}).startswith(
        "postgresql+psycopg://"
    )
    monkeypatch.setenv("ARBX_DATABASE_URL", "sqlite:///x.db")
    assert db.database_url() == "sqlite:///x.db"
    with pytest.raises(ConfigError, match="invalid database URL"):
        db.database_url({"ARBX_DATABASE_URL": "not a url"})
    # The default creates ./data under the working directory.
    monkeypatch.chdir(tmp_path)
    engine = db.make_engine(db.DEFAULT_DATABASE_URL)
    with engine.connect() as conn:
        conn.execute(text("select 1"))
    engine.dispose()
    assert (tmp_path / "data" / "arbx.db").is_file()


# --- migrations -------------------------------------------------------------------------------


def test_migrations_from_empty_to_head_and_back(db_url: str) -> None:
    assert migrate.current(db_url) is None
    migrate.upgrade(db_url)
    assert migrate.current(db_url) == migrate.head() == "0008"
    engine = db.make_engine(db_url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        indexes = {i["name"] for i in inspect(engine).get_indexes("opportunities")}
        assert {
            "ix_opportunities_run_id_id",
            "ix_opportunities_block_number",
            "ix_opportunities_route_key",
            "ix_opportunities_net_profit",
        } <= indexes
        migrate.upgrade(db_url)  # idempotent at head
        migrate.downgrade(db_url)
        assert migrate.current(db_url) is None
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        migrate.upgrade(db_url, "0001")
        assert migrate.current(db_url) == "0001"
    finally:
        engine.dispose()


def test_models_match_migrations(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


# --- column types -----------------------------------------------------------------------------


def test_uint256_and_signed_amounts_round_trip_exactly(
    factory: sessionmaker[Session], chain_row: int
) -> None:
    run_id = start(factory)
    big = Opportunity(
        route=ROUTE_A,
        amount_in=UINT256_MAX,
        amounts=(UINT256_MAX - 1, UINT256_MAX),
        gross_profit=-(2**255),
        gas_units=2**62,
        gas_cost=UINT256_MAX,
        builder_payment=0,
        net_profit=2**255 - 1,
    )
    with factory.begin() as s:
        (oid,) = repo.add_opportunities(s, run_id, header(1), [big], T0, 1.5)
    with factory() as s:
        row = s.get_one(OpportunityRow, oid)
        assert row.amount_in == UINT256_MAX
        assert type(row.amount_in) is int
        assert row.amount_out == UINT256_MAX
        assert row.amounts_json == [str(UINT256_MAX - 1), str(UINT256_MAX)]
        assert row.gross_profit == -(2**255)
        assert row.net_profit == 2**255 - 1
        assert row.gas_cost == UINT256_MAX
        assert row.gas_units == 2**62
        assert row.builder_payment == 0


def test_amount_outside_uint256_is_refused(factory: sessionmaker[Session], chain_row: int) -> None:
    run_id = start(factory)
    too_big = opportunity(ROUTE_A, net=1, amount_in=2**256)
    with pytest.raises(StatementError, match="outside UInt256"), factory.begin() as s:
        repo.add_opportunities(s, run_id, header(1), [too_big], T0, 1.0)


def test_times_are_aware_utc_with_microseconds(
    factory: sessionmaker[Session], chain_row: int
) -> None:
    seen = datetime(2025, 3, 1, 14, 0, 0, 987654, tzinfo=timezone(timedelta(hours=2)))
    with factory.begin() as s:
        block_id = repo.record_block(s, header(5), seen)
    with factory() as s:
        got = s.get_one(Block, block_id).seen_at
    assert got == seen
    assert got.tzinfo == UTC
    assert got.hour == 12
    assert got.microsecond == 987654
    with pytest.raises(StatementError, match="naive datetime"), factory.begin() as s:
        repo.record_block(s, header(6), datetime(2025, 1, 1))


def test_foreign_keys_are_enforced(factory: sessionmaker[Session]) -> None:
    with pytest.raises(IntegrityError), factory.begin() as s:
        repo.start_run(s, chain_id=999_999)


# --- chains, tokens, pools --------------------------------------------------------------------


def test_upserts_are_idempotent_and_keep_known_metadata(
    factory: sessionmaker[Session], chain_row: int
) -> None:
    weth, usdc = Token(WETH, "WETH", 18), Token(USDC, "USDC", 6)
    v2 = V2Pool(POOL_A, weth, usdc, 10**21, 3 * 10**12, fee_bps=30, chain_id=CHAIN, block=100)
    v3 = V3Pool(
        POOL_B, weth, usdc, 500, 10, 2**96, 0, 10**18, (), {}, {}, chain_id=CHAIN, block=100
    )
    record = repo.PoolRecord(
        chain_id=CHAIN,
        address=POOL_C,
        family="uniswap_v2",
        token0=WETH,
        token1=DAI,
        fee=25,
        venue="sushiswap",
        created_block=10,
        last_synced_block=90,
    )
    for _ in range(2):
        with factory.begin() as s:
            repo.upsert_chain(s, CHAIN, "devnet")
            assert repo.upsert_pools(s, [v2, v3, record]) == 3
    with factory.begin() as s:
        repo.upsert_chain(s, CHAIN, "anvil")
        # Less known this time: None must not erase what is stored.
        repo.upsert_tokens(s, CHAIN, [Token(WETH), Token(USDC, None, 6)])
        later = repo.PoolRecord(CHAIN, POOL_C, "uniswap_v2", WETH, DAI, 25, last_synced_block=120)
        repo.upsert_pools(s, [later])
    with factory() as s:
        tokens = {t.address: (t.symbol, t.decimals) for t in s.scalars(select(TokenRow))}
        assert tokens == {WETH: ("WETH", 18), USDC: ("USDC", 6), DAI: (None, None)}
        pools = {p.address: p for p in s.scalars(select(PoolRow))}
        assert len(pools) == 3
        assert (pools[POOL_A].family, pools[POOL_A].fee, pools[POOL_A].tick_spacing) == (
            "uniswap_v2",
            30,
            None,
        )
        assert (pools[POOL_B].family, pools[POOL_B].fee, pools[POOL_B].tick_spacing) == (
            "uniswap_v3",
            500,
            10,
        )
        assert pools[POOL_B].last_synced_block == 100
        c = pools[POOL_C]
        assert (c.venue, c.created_block, c.last_synced_block) == ("sushiswap", 10, 120)
        assert s.execute(text("select name from chains")).scalar_one() == "anvil"


# --- blocks and reorgs ------------------------------------------------------------------------


def test_blocks_are_unique_per_chain_and_hash(
    factory: sessionmaker[Session], chain_row: int
) -> None:
    run_id = start(factory)
    with factory.begin() as s:
        first = repo.record_block(s, header(7), T0, run_id=run_id)
        again = repo.record_block(
            s, header(7), T0 + timedelta(seconds=1), processed_at=T0, latency_ms=4.25
        )
        other = repo.record_block(s, header(7, fork="b"), T0, run_id=run_id)
    assert first == again != other
    with factory() as s:
        row = s.get_one(Block, first)
        assert (row.seen_at, row.processed_at, row.latency_ms) == (T0, T0, 4.25)
        assert s.get_one(Run, run_id).blocks_seen == 2
    duplicate = Block(
        chain_id=CHAIN, number=7, hash=header(7).hash, parent_hash="0x", timestamp=0, seen_at=T0
    )
    with pytest.raises(IntegrityError), factory.begin() as s:
        s.add(duplicate)


def test_mark_reorged_marks_from_a_height_on(
    factory: sessionmaker[Session], chain_row: int
) -> None:
    with factory.begin() as s:
        repo.upsert_chain(s, 1, "mainnet")
        for n in range(100, 106):
            repo.record_block(s, header(n), T0)
        repo.record_block(s, header(104, chain_id=1), T0)
    with factory.begin() as s:
        assert repo.mark_reorged(s, CHAIN, 103) == 3
        assert repo.mark_reorged(s, CHAIN, 103) == 0
    with factory.begin() as s:
        reorged = s.scalars(select(Block.number).where(Block.reorged.is_(True))).all()
        assert sorted(reorged) == [103, 104, 105]
        # The new branch is canonical, and a block that comes back is canonical again.
        repo.record_block(s, header(103, fork="b"), T0)
        repo.record_block(s, header(104), T0)
    with factory() as s:
        rows = s.execute(select(Block.number, Block.hash, Block.reorged)).all()
        state = {(n, h): r for n, h, r in rows}
        assert state[(103, header(103, fork="b").hash)] is False
        assert state[(104, header(104).hash)] is False
        assert state[(105, header(105).hash)] is True
        mainnet = s.execute(select(Block.reorged).where(Block.chain_id == 1)).scalar_one()
        assert mainnet is False


# --- runs, opportunities, report --------------------------------------------------------------


def test_a_thousand_opportunities_are_inserted_in_a_few_statements(
    factory: sessionmaker[Session], chain_row: int, engine: Engine
) -> None:
    """The writer inserts a block's opportunities as one batch: the statements sent to the database
    do not grow with the number of rows (their speed is measured in `make bench`, not here)."""
    run_id = start(factory)
    batch = [opportunity(ROUTE_B if i % 2 else ROUTE_A, net=i + 1) for i in range(1000)]
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", count)
    try:
        for n in range(3):
            statements.clear()
            with factory.begin() as s:
                ids = repo.add_opportunities(s, run_id, header(n), batch, T0, 12.0)
            assert len(ids) == 1000
            assert ids == sorted(ids)
            inserts = [q for q in statements if q.lstrip().upper().startswith("INSERT")]
            assert 1 <= len(inserts) <= 4, inserts
            assert len(statements) <= 12, statements
    finally:
        event.remove(engine, "before_cursor_execute", count)
    with factory() as s:
        page = repo.list_opportunities(s, run_id=run_id, after_id=ids[0] - 1, limit=2)
        assert [o.id for o in page] == ids[:2]
        assert [o.net_profit for o in page] == [1, 2]


def test_paging_and_filters_compare_amounts_as_numbers(
    factory: sessionmaker[Session], chain_row: int
) -> None:
    run_id = start(factory)
    nets = [-(2**200), -5, 0, 9, 10, 2**70, 2**250]
    with factory.begin() as s:
        ids = repo.add_opportunities(
            s, run_id, header(1), [opportunity(ROUTE_A, n, amount_in=2**210) for n in nets], T0, 1.0
        )
        repo.add_opportunities(s, run_id, header(2), [opportunity(ROUTE_B, 50)], T0, 1.0)
    with factory() as s:
        above = repo.list_opportunities(s, run_id=run_id, min_net_profit=10, route=None)
        assert [o.net_profit for o in above] == [10, 2**70, 2**250, 50]
        negative_up = repo.list_opportunities(s, run_id=run_id, min_net_profit=-5)
        assert [o.net_profit for o in negative_up][:3] == [-5, 0, 9]
        only_a = repo.list_opportunities(s, route=repo.route_key(ROUTE_A), limit=1000)
        assert [o.id for o in only_a] == ids
        by_profit = s.scalars(
            select(OpportunityRow.net_profit).order_by(OpportunityRow.net_profit.desc())
        ).all()
        assert by_profit == sorted([*nets, 50], reverse=True)
        page2 = repo.list_opportunities(s, run_id=run_id, after_id=ids[2], limit=2)
        assert [o.id for o in page2] == ids[3:5]


def test_opportunity_status_and_run_lifecycle(
    factory: sessionmaker[Session], chain_row: int
) -> None:
    run_id = start(factory, settings={"max_hops": 3, "min_profit": str(10**18)})
    with factory.begin() as s:
        (oid,) = repo.add_opportunities(s, run_id, header(1), [opportunity(ROUTE_A, 5)], T0, 2.0)
        repo.set_opportunity_status(s, oid, "simulated_revert")
        end = T0 + timedelta(minutes=5)
        repo.finish_run(s, run_id, "ok", summary={"blocks": 1}, ended_at=end)
    bare = start(factory)
    with factory() as s:
        assert s.get_one(OpportunityRow, oid).status == "simulated_revert"
        run = s.get_one(Run, run_id)
        assert (run.status, run.ended_at, run.summary_json) == ("ok", end, {"blocks": 1})
        assert run.settings_json == {"max_hops": 3, "min_profit": str(10**18)}
        # None is SQL NULL, not a JSON null: only the second run has no settings.
        unset = s.scalars(text("select id from runs where settings_json is null")).all()
        assert unset == [bare]
        with pytest.raises(InputError, match="no run"):
            repo.finish_run(s, run_id + 100, "ok")
        with pytest.raises(InputError, match="no opportunity"):
            repo.set_opportunity_status(s, oid + 100, "x")


def test_report_numbers_come_from_what_was_recorded(
    factory: sessionmaker[Session], chain_row: int
) -> None:
    with factory() as s, pytest.raises(InputError, match="no runs"):
        repo.report(s)
    older = start(factory)
    with factory.begin() as s:
        repo.add_opportunities(s, older, header(1), [opportunity(ROUTE_A, 5)], T0, 99.0)
        repo.add_parity_check(s, older, 1, 10, 1)
    run_id = start(factory, mode="shadow")
    a, b = repo.route_key(ROUTE_A), repo.route_key(ROUTE_B)
    with factory.begin() as s:
        for n in (1, 2, 3, 4):
            repo.record_block(s, header(n), T0, run_id=run_id)
        repo.add_opportunities(
            s, run_id, header(1), [opportunity(ROUTE_A, 100), opportunity(ROUTE_B, 2**200)], T0, 10
        )
        repo.add_opportunities(s, run_id, header(2), [opportunity(ROUTE_A, 7)], T0, 50.0)
        repo.add_opportunities(s, run_id, header(2), [opportunity(ROUTE_A, 0)], T0, 30.0)
        repo.add_opportunities(s, run_id, header(4), [opportunity(ROUTE_B, -3)], T0, 20.0)
        repo.add_parity_check(s, run_id, 2, 40, 0, detail=[])
        repo.add_parity_check(s, run_id, 4, 40, 2, detail=[{"pool": POOL_A}])
        repo.mark_reorged(s, CHAIN, 4)
        repo.finish_run(s, run_id, "ok", summary={"note": "done"}, ended_at=T0)

    with factory() as s:
        got = repo.report(s)
        assert got == repo.report(s, run_id)
        assert got["run"]["id"] == run_id
        assert (got["run"]["mode"], got["run"]["status"]) == ("shadow", "ok")
        assert (got["run"]["started_at"], got["run"]["ended_at"]) == (T0, T0)
        assert got["blocks"] == 4
        assert got["blocks_with_opportunities"] == 3
        assert got["opportunities"] == 5
        assert got["opportunities_on_reorged_blocks"] == 1
        assert got["expected_net_profit_wei"] == 2**200 - 3 + 107
        assert type(got["expected_net_profit_wei"]) is int
        # Block 1's two routes share pools A and B: only the better one could be captured.
        assert got["capturable_net_profit_wei"] == 2**200 + 7
        assert got["capturable_opportunities"] == 2
        assert got["by_route"] == [
            {
                "route_key": b,
                "pools": list(ROUTE_B.pools),
                "count": 2,
                "expected_net_profit_wei": 2**200 - 3,
            },
            {
                "route_key": a,
                "pools": list(ROUTE_A.pools),
                "count": 3,
                "expected_net_profit_wei": 107,
            },
        ]
        assert got["latency_ms"] == {"p50": 20.0, "p90": 30.0, "p99": 30.0, "samples": 3}
        assert got["parity"] == {"checks": 2, "failures": 2, "coverage": 0.5}
        assert len(repo.report(s, run_id, top_routes=1)["by_route"]) == 1

        old = repo.report(s, older)
        assert (old["opportunities"], old["expected_net_profit_wei"], old["blocks"]) == (1, 5, 0)
        assert old["run"]["status"] == "running"
        assert old["run"]["ended_at"] is None
        assert old["latency_ms"]["p99"] == 99.0
        assert old["parity"] == {"checks": 1, "failures": 1, "coverage": None}
        with pytest.raises(InputError, match=f"no run {run_id + 1}"):
            repo.report(s, run_id + 1)


def test_capturable_flags_for_rows_written_before_them_and_across_a_downgrade(
    db_url: str,
) -> None:
    migrate.upgrade(db_url)
    engine = db.make_engine(db_url)
    factory = db.make_session_factory(engine)
    try:
        with factory.begin() as s:
            repo.upsert_chain(s, CHAIN, "devnet")
        run_id = start(factory)
        c_route = Route(pools=(POOL_C,), zero_for_one=(True,), tokens=(WETH, WETH))
        found = [opportunity(ROUTE_A, 10), opportunity(ROUTE_B, 12), opportunity(c_route, 3)]
        with factory.begin() as s:
            repo.add_opportunities(s, run_id, header(1), found, T0, 5.0)
            flags = s.execute(
                select(OpportunityRow.net_profit, OpportunityRow.capturable).order_by(
                    OpportunityRow.id
                )
            ).all()
        # B (12) shares pools with A (10) and C (3): A and C together (13) are worth more.
        assert [tuple(f) for f in flags] == [(10, True), (12, False), (3, True)]
        with factory() as s:
            assert repo.capturable_of_run(s, run_id) == (2, 13)
        migrate.downgrade(db_url, "0003")  # the previous release's schema keeps its rows
        with engine.connect() as conn:
            assert conn.execute(text("select count(*) from opportunities")).scalar_one() == 3
        migrate.upgrade(db_url)
        with factory() as s:  # rows without a flag: worked out per block when reported
            assert s.scalars(select(OpportunityRow.capturable)).all() == [None] * 3
            assert repo.capturable_of_run(s, run_id) == (2, 13)
            got = repo.report(s, run_id)
        assert (got["capturable_net_profit_wei"], got["expected_net_profit_wei"]) == (13, 25)
    finally:
        engine.dispose()


# --- SQLite sharing ---------------------------------------------------------------------------


def test_sqlite_pragmas_for_sharing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'dir' / 'arbx.db'}"
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == db.SQLITE_BUSY_TIMEOUT_MS
    finally:
        engine.dispose()


def test_sqlite_writers_in_two_connections_do_not_lock_each_other_out(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    migrate.upgrade(url)
    engines = [db.make_engine(url) for _ in range(2)]
    with db.make_session_factory(engines[0]).begin() as s:
        repo.upsert_chain(s, CHAIN, "devnet")
    errors: list[BaseException] = []

    def work(engine: Engine, worker: int) -> None:
        factory = db.make_session_factory(engine)
        try:
            for n in range(40):
                with factory.begin() as s:  # read, then write: the classic lock upgrade
                    s.execute(select(Block.id).limit(1)).all()
                    repo.record_block(s, header(n, fork=f"w{worker}"), T0)
                    time.sleep(0.001)
        except BaseException as exc:  # the test reports whatever went wrong
            errors.append(exc)

    reader_factory = db.make_session_factory(engines[0], readonly=True)
    threads = [threading.Thread(target=work, args=(e, i)) for i, e in enumerate(engines)]
    for t in threads:
        t.start()
    with reader_factory() as s:  # a reader alongside the writers
        s.execute(select(Block.id)).all()
    for t in threads:
        t.join()
    for e in engines:
        e.dispose()
    assert errors == []
    with db.make_engine(url).connect() as conn:
        assert conn.execute(text("select count(*) from blocks")).scalar_one() == 80
