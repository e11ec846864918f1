"""Repositories: what the engine writes as it runs and what ``arbx report`` reads back.

Plain functions over a ``Session``. None of them commits: the caller owns the transaction
(``with factory.begin() as session: ...``). Upserts are idempotent: running one twice leaves the
same rows. Every amount goes in and comes out as an exact Python ``int``.

Latency. Each opportunity carries the latency from its block's arrival to its detection; the
report's percentiles take one sample per block that produced opportunities in the run (the
smallest latency recorded for that block: the time to its first opportunity). Blocks carry their
own ``latency_ms`` (arrival to fully processed), written by ``record_block``, for dashboards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict, cast

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    Table,
    and_,
    case,
    func,
    select,
    type_coerce,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from arbx.domain.capture import best_disjoint
from arbx.domain.errors import ConfigError, InputError
from arbx.domain.pools import Pool, Token, V2Pool
from arbx.domain.profit import Opportunity
from arbx.domain.routes import Route
from arbx.metrics import record as metrics
from arbx.scrub import public_settings
from arbx.store.models import (
    Block,
    BlockResultRow,
    Chain,
    OpportunityRow,
    ParityCheck,
    PoolRow,
    Run,
    TokenRow,
)

_DIGITS = 78  # the width of a non-negative amount in SQLite (see models.encode_sortable)
# (start, length) of digit slices: 6 + 8 * 9 = 78 digits; a sum of 9-digit slices fits in 64 bits
# for up to 9 billion rows.
_SLICES = [(1, 6), *((7 + 9 * i, 9) for i in range(8))]


@dataclass(frozen=True, slots=True)
class BlockHeader:
    """The parts of a block header the store keeps."""

    chain_id: int
    number: int
    hash: str
    parent_hash: str
    timestamp: int


@dataclass(frozen=True, slots=True)
class PoolRecord:
    """A pool's static description, as stored in ``pools``."""

    chain_id: int
    address: str
    family: str
    token0: str
    token1: str
    fee: int
    tick_spacing: int | None = None
    venue: str | None = None
    created_block: int | None = None
    last_synced_block: int | None = None

    @classmethod
    def from_pool(
        cls, pool: Pool, venue: str | None = None, created_block: int | None = None
    ) -> PoolRecord:
        """The record of a domain pool; its block becomes ``last_synced_block``."""
        if isinstance(pool, V2Pool):
            fee, spacing = pool.fee_bps, None
        else:
            fee, spacing = pool.fee, pool.tick_spacing
        return cls(
            chain_id=pool.chain_id,
            address=pool.address,
            family=pool.family,
            token0=pool.token0.address,
            token1=pool.token1.address,
            fee=fee,
            tick_spacing=spacing,
            venue=venue,
            created_block=created_block,
            last_synced_block=pool.block,
        )


class RunInfo(TypedDict):
    """The run a report is about."""

    id: int
    chain_id: int
    mode: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    blocks_seen: int
    settings: dict[str, Any] | None
    summary: dict[str, Any] | None


class RouteStat(TypedDict):
    """Opportunities of one route in a run."""

    route_key: str
    pools: list[str]
    count: int
    expected_net_profit_wei: int


class LatencyStats(TypedDict):
    """Block arrival -> first opportunity, in milliseconds, over blocks with opportunities."""

    p50: float | None
    p90: float | None
    p99: float | None
    samples: int


class ParityStats(TypedDict):
    """Pool-state parity checks of a run: blocks checked, pools found different, and the
    coverage (blocks checked / blocks seen; None before any block)."""

    checks: int
    failures: int
    coverage: float | None


class Report(TypedDict):
    """What ``arbx report`` prints for one run."""

    run: RunInfo
    blocks: int
    blocks_with_opportunities: int
    opportunities: int
    opportunities_on_reorged_blocks: int
    expected_net_profit_wei: int  # the sum of all found: overlapping routes counted each time
    capturable_net_profit_wei: int  # per block, the best pool-disjoint set only
    capturable_opportunities: int
    by_route: list[RouteStat]
    latency_ms: LatencyStats
    parity: ParityStats


# --- routes -----------------------------------------------------------------------------------


def route_key(route: Route) -> str:
    """A route's stable key: pool addresses joined by '>', then '|' and one 0/1 per direction."""
    bits = "".join("1" if z else "0" for z in route.zero_for_one)
    return ">".join(route.pools) + "|" + bits


def route_key_pools(key: str) -> list[str]:
    """The pool addresses named by a route key."""
    return key.split("|", 1)[0].split(">")


# --- chains, tokens, pools --------------------------------------------------------------------


def upsert_chain(session: Session, chain_id: int, name: str) -> None:
    """Insert the chain, or rename it."""
    _upsert(session, Chain, [{"id": chain_id, "name": name}], ["id"], lambda ex: {"name": ex.name})


def upsert_tokens(session: Session, chain_id: int, tokens: Iterable[Token]) -> int:
    """Insert or update tokens; a symbol or decimals left None keeps what is stored. -> count."""
    rows = {t.address: {"chain_id": chain_id, **asdict(t)} for t in tokens}
    _upsert(
        session,
        TokenRow,
        list(rows.values()),
        ["chain_id", "address"],
        lambda ex: {
            "symbol": func.coalesce(ex.symbol, TokenRow.symbol),
            "decimals": func.coalesce(ex.decimals, TokenRow.decimals),
        },
    )
    return len(rows)


def upsert_pools(session: Session, pools: Iterable[Pool | PoolRecord]) -> int:
    """Insert or update pools (and their tokens, which must be on the pool's chain). -> count.

    A venue, created block or synced block left None keeps what is stored.
    """
    records: dict[tuple[int, str], PoolRecord] = {}
    tokens: dict[int, dict[str, Token]] = {}
    for pool in pools:
        if isinstance(pool, PoolRecord):
            record = pool
            found = [Token(pool.token0), Token(pool.token1)]
        else:
            record = PoolRecord.from_pool(pool)
            found = [pool.token0, pool.token1]
        records[(record.chain_id, record.address)] = record
        known = tokens.setdefault(record.chain_id, {})
        for token in found:
            old = known.get(token.address)
            if old is None or token.symbol is not None or token.decimals is not None:
                known[token.address] = token
    for chain_id, chain_tokens in tokens.items():
        upsert_tokens(session, chain_id, chain_tokens.values())
    _upsert(
        session,
        PoolRow,
        [asdict(r) for r in records.values()],
        ["chain_id", "address"],
        lambda ex: {
            "family": ex.family,
            "token0": ex.token0,
            "token1": ex.token1,
            "fee": ex.fee,
            "tick_spacing": ex.tick_spacing,
            "venue": func.coalesce(ex.venue, PoolRow.venue),
            "created_block": func.coalesce(ex.created_block, PoolRow.created_block),
            "last_synced_block": func.coalesce(ex.last_synced_block, PoolRow.last_synced_block),
        },
    )
    return len(records)


# --- blocks -----------------------------------------------------------------------------------


def record_block(
    session: Session,
    header: BlockHeader,
    seen_at: datetime,
    *,
    run_id: int | None = None,
    processed_at: datetime | None = None,
    latency_ms: float | None = None,
) -> int:
    """Insert or refresh a block (it is canonical again if it was reorged). -> its row id.

    With ``run_id``, the run's ``blocks_seen`` goes up by one: call it once per block per run.
    """
    row = {
        **asdict(header),
        "seen_at": seen_at,
        "processed_at": processed_at,
        "latency_ms": latency_ms,
        "reorged": False,
    }
    _upsert(
        session,
        Block,
        [row],
        ["chain_id", "hash"],
        lambda ex: {
            "processed_at": func.coalesce(ex.processed_at, Block.processed_at),
            "latency_ms": func.coalesce(ex.latency_ms, Block.latency_ms),
            "reorged": False,
        },
    )
    block_id = session.execute(
        select(Block.id).where(Block.chain_id == header.chain_id, Block.hash == header.hash)
    ).scalar_one()
    if run_id is not None:
        session.execute(update(Run).where(Run.id == run_id).values(blocks_seen=Run.blocks_seen + 1))
    return block_id


def mark_reorged(session: Session, chain_id: int, from_number: int) -> int:
    """Mark every canonical block of the chain from ``from_number`` on as reorged. -> count."""
    ids = session.execute(
        update(Block)
        .where(Block.chain_id == chain_id, Block.number >= from_number, Block.reorged.is_(False))
        .values(reorged=True)
        .returning(Block.id)
    ).all()
    return len(ids)


# --- runs -------------------------------------------------------------------------------------


def start_run(
    session: Session,
    chain_id: int,
    mode: str = "shadow",
    settings: Mapping[str, Any] | None = None,
    started_at: datetime | None = None,
) -> int:
    """Open a run (status 'running') on a chain already stored. -> run id.

    ``settings`` are stored without secrets (``arbx.scrub.public_settings``).
    """
    run = Run(
        chain_id=chain_id,
        mode=mode,
        settings_json=public_settings(dict(settings)) if settings is not None else None,
        status="running",
        started_at=started_at or datetime.now(UTC),
        blocks_seen=0,
    )
    session.add(run)
    session.flush()
    return run.id


def finish_run(
    session: Session,
    run_id: int,
    status: str,
    summary: Mapping[str, Any] | None = None,
    ended_at: datetime | None = None,
) -> None:
    """Close a run with its final status ('ok', 'failed', 'interrupted', ...) and summary."""
    run = session.get(Run, run_id)
    if run is None:
        raise InputError(f"no run {run_id}")
    run.status = status
    run.summary_json = public_settings(dict(summary)) if summary is not None else None
    run.ended_at = ended_at or datetime.now(UTC)
    session.flush()


KILLED = "ended without a stop: killed"
STALE_RUN_AFTER = timedelta(seconds=120)  # a record waits on an unreachable database as long


def close_stale_runs(
    session: Session,
    chain_id: int,
    *,
    older_than: timedelta = STALE_RUN_AFTER,
    now: datetime | None = None,
    keep: Iterable[int] = (),
) -> list[int]:
    """Close as ``failed`` the runs on ``chain_id`` still ``running`` whose last sign of life
    (their newest block result, else their start) is older than ``older_than``: a process that
    ended without a stop (SIGKILL, the OOM killer, a lost node) leaves its row running for ever.
    A run that still records its blocks is left alone, and so are the ``keep`` ones. -> the ids
    closed."""
    now = now or datetime.now(UTC)
    last_result = (
        select(func.max(BlockResultRow.recorded_at))
        .where(BlockResultRow.run_id == Run.id)
        .scalar_subquery()
    )
    rows = session.execute(
        select(Run, last_result).where(
            Run.chain_id == chain_id, Run.status == "running", Run.id.not_in(list(keep))
        )
    ).all()
    closed: list[int] = []
    for run, last in rows:
        seen = _aware(run.started_at if last is None else max(last, run.started_at))
        if now - seen < older_than:
            continue
        summary = dict(run.summary_json or {})
        summary.update(reason=KILLED, last_seen_at=seen.isoformat())
        run.status, run.ended_at, run.summary_json = "failed", seen, summary
        closed.append(run.id)
    session.flush()
    return closed


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def latest_run_id(session: Session) -> int | None:
    """The newest run's id, or None when there is none."""
    return session.execute(select(func.max(Run.id))).scalar_one_or_none()


# --- opportunities and parity -----------------------------------------------------------------


def add_opportunities(
    session: Session,
    run_id: int,
    block: BlockHeader,
    opportunities: Sequence[Opportunity],
    detected_at: datetime,
    latency_ms: float,
    status: str = "found",
) -> list[int]:
    """Insert one block's opportunities in bulk. -> their ids, in the given order.

    Each is flagged ``capturable`` when it is in the block's best pool-disjoint set.
    """
    if not opportunities:
        return []
    chosen = set(best_disjoint([(o.route.pools, o.net_profit) for o in opportunities]))
    metrics.opportunities_capturable(len(chosen), sum(opportunities[i].net_profit for i in chosen))
    rows = [
        {
            "run_id": run_id,
            "chain_id": block.chain_id,
            "block_number": block.number,
            "block_hash": block.hash,
            "route_key": route_key(o.route),
            "pools_json": list(o.route.pools),
            "tokens_json": list(o.route.tokens),
            "amount_in": o.amount_in,
            "amounts_json": [str(a) for a in o.amounts],
            "amount_out": o.amount_out,
            "gross_profit": o.gross_profit,
            "gas_units": o.gas_units,
            "gas_cost": o.gas_cost,
            "builder_payment": o.builder_payment,
            "net_profit": o.net_profit,
            "detected_at": detected_at,
            "latency_ms": latency_ms,
            "status": status,
            "capturable": i in chosen,
        }
        for i, o in enumerate(opportunities)
    ]
    # A plain executemany: several times faster than INSERT .. RETURNING on PostgreSQL. Ids come
    # from the sequence (PostgreSQL) or the rowid (SQLite) in execution order, so this batch's
    # are the run's newest for this block.
    session.execute(cast(Table, OpportunityRow.__table__).insert(), rows)
    newest = session.scalars(
        select(OpportunityRow.id)
        .where(OpportunityRow.run_id == run_id, OpportunityRow.block_hash == block.hash)
        .order_by(OpportunityRow.id.desc())
        .limit(len(rows))
    ).all()
    return sorted(newest)


def set_opportunity_status(session: Session, opportunity_id: int, status: str) -> None:
    """Record what became of an opportunity ('simulated_ok', 'simulated_revert', ...)."""
    row = session.get(OpportunityRow, opportunity_id)
    if row is None:
        raise InputError(f"no opportunity {opportunity_id}")
    row.status = status
    session.flush()


def set_route_status(
    session: Session,
    run_id: int,
    block_number: int,
    block_hash: str,
    route_keys: Sequence[str],
    status: str,
) -> int:
    """Record what became of the run's opportunities of ``route_keys`` found in one block (its
    number and hash): a simulation's result. -> how many rows it changed."""
    if not route_keys:
        return 0
    result = session.execute(
        update(OpportunityRow)
        .where(
            OpportunityRow.run_id == run_id,
            OpportunityRow.block_number == block_number,
            OpportunityRow.block_hash == block_hash,
            OpportunityRow.route_key.in_(sorted(set(route_keys))),
        )
        .values(status=status)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def list_opportunities(
    session: Session,
    *,
    run_id: int | None = None,
    after_id: int = 0,
    limit: int = 100,
    min_net_profit: int | None = None,
    route: str | None = None,
) -> list[OpportunityRow]:
    """A page of opportunities in id order after ``after_id`` (keyset paging), filtered."""
    stmt = select(OpportunityRow).where(OpportunityRow.id > after_id)
    if run_id is not None:
        stmt = stmt.where(OpportunityRow.run_id == run_id)
    if min_net_profit is not None:
        stmt = stmt.where(OpportunityRow.net_profit >= min_net_profit)
    if route is not None:
        stmt = stmt.where(OpportunityRow.route_key == route)
    return list(session.scalars(stmt.order_by(OpportunityRow.id).limit(limit)))


def add_parity_check(
    session: Session,
    run_id: int,
    block_number: int,
    pools_checked: int,
    failures: int,
    detail: Any = None,
    at: datetime | None = None,
) -> int:
    """Record one comparison of our pool states with the chain's. -> its id."""
    check = ParityCheck(
        run_id=run_id,
        block_number=block_number,
        pools_checked=pools_checked,
        failures=failures,
        detail_json=detail,
        at=at or datetime.now(UTC),
    )
    session.add(check)
    session.flush()
    return check.id


# --- report -----------------------------------------------------------------------------------


def report(session: Session, run_id: int | None = None, *, top_routes: int | None = None) -> Report:
    """A run's numbers (the latest run unless ``run_id`` is given); InputError if there is none."""
    if run_id is None:
        run_id = latest_run_id(session)
        if run_id is None:
            raise InputError("no runs recorded yet")
    run = session.get(Run, run_id)
    if run is None:
        raise InputError(f"no run {run_id}")

    routes = _profit_by_route(session, run_id)
    by_route = sorted(
        (
            RouteStat(
                route_key=key,
                pools=route_key_pools(key),
                count=count,
                expected_net_profit_wei=total,
            )
            for key, (count, total) in routes.items()
        ),
        key=lambda r: (-r["expected_net_profit_wei"], -r["count"], r["route_key"]),
    )
    latencies = sorted(
        float(ms)
        for ms in session.scalars(
            select(func.min(OpportunityRow.latency_ms))
            .where(OpportunityRow.run_id == run_id)
            .group_by(OpportunityRow.block_hash)
        )
    )
    on_reorged = session.execute(
        select(func.count())
        .select_from(OpportunityRow)
        .join(
            Block,
            and_(
                Block.chain_id == OpportunityRow.chain_id, Block.hash == OpportunityRow.block_hash
            ),
        )
        .where(OpportunityRow.run_id == run_id, Block.reorged.is_(True))
    ).scalar_one()
    capturable_count, capturable_total = capturable_of_run(session, run_id)
    checks, failures = session.execute(
        select(func.count(), func.coalesce(func.sum(ParityCheck.failures), 0)).where(
            ParityCheck.run_id == run_id, ParityCheck.pools_checked > 0
        )
    ).one()

    return Report(
        run=RunInfo(
            id=run.id,
            chain_id=run.chain_id,
            mode=run.mode,
            status=run.status,
            started_at=run.started_at,
            ended_at=run.ended_at,
            blocks_seen=run.blocks_seen,
            settings=public_settings(run.settings_json),  # rows written before it was scrubbed
            summary=public_settings(run.summary_json),
        ),
        blocks=run.blocks_seen,
        blocks_with_opportunities=len(latencies),
        opportunities=sum(count for count, _ in routes.values()),
        opportunities_on_reorged_blocks=int(on_reorged),
        expected_net_profit_wei=sum(total for _, total in routes.values()),
        capturable_net_profit_wei=capturable_total,
        capturable_opportunities=capturable_count,
        by_route=by_route[:top_routes] if top_routes is not None else by_route,
        latency_ms=LatencyStats(
            p50=percentile(latencies, 50),
            p90=percentile(latencies, 90),
            p99=percentile(latencies, 99),
            samples=len(latencies),
        ),
        parity=ParityStats(
            checks=int(checks),
            failures=int(failures),
            coverage=int(checks) / run.blocks_seen if run.blocks_seen else None,
        ),
    )


def capturable_of_run(session: Session, run_id: int) -> tuple[int, int]:
    """(count, net profit) of the run's capturable opportunities: per block, the best
    pool-disjoint set. Rows written before the flag existed are worked out here, per block."""
    flagged = session.scalars(
        select(OpportunityRow.net_profit).where(
            OpportunityRow.run_id == run_id, OpportunityRow.capturable.is_(True)
        )
    ).all()
    count, total = len(flagged), sum(flagged)
    blocks: dict[str, list[tuple[list[str], int]]] = {}
    for block_hash, pools, profit in session.execute(
        select(OpportunityRow.block_hash, OpportunityRow.pools_json, OpportunityRow.net_profit)
        .where(OpportunityRow.run_id == run_id, OpportunityRow.capturable.is_(None))
        .order_by(OpportunityRow.id)
    ):
        blocks.setdefault(block_hash, []).append((pools, profit))
    for candidates in blocks.values():
        chosen = best_disjoint(candidates)
        count += len(chosen)
        total += sum(candidates[i][1] for i in chosen)
    return count, total


def percentile(sorted_values: Sequence[float], p: int) -> float | None:
    """The nearest-rank ``p``-th percentile (0 < p <= 100) of sorted values; None if empty."""
    if not 0 < p <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {p}")
    n = len(sorted_values)
    if n == 0:
        return None
    rank = -(-p * n // 100)
    return sorted_values[rank - 1]


# --- helpers ----------------------------------------------------------------------------------


def _profit_by_route(session: Session, run_id: int) -> dict[str, tuple[int, int]]:
    """route_key -> (count, exact sum of net profit) over a run's opportunities."""
    where = OpportunityRow.run_id == run_id
    if _dialect(session) == "postgresql":
        grouped = session.execute(
            select(OpportunityRow.route_key, func.count(), func.sum(OpportunityRow.net_profit))
            .where(where)
            .group_by(OpportunityRow.route_key)
        )
        return {key: (int(count), int(total)) for key, count, total in grouped}
    # SQLite keeps amounts as sortable text and its SUM of large numbers goes through doubles:
    # sum the digits in slices small enough for 64-bit integers, and carry in Python.
    raw = type_coerce(OpportunityRow.net_profit, String)
    negative = func.substr(raw, 1, 1) == "-"
    digits = case((negative, func.substr(raw, 2)), else_=raw)
    slices = [
        func.sum(sql_cast(func.substr(digits, start, length), Integer)) for start, length in _SLICES
    ]
    rows = session.execute(
        select(
            OpportunityRow.route_key,
            func.count(),
            func.sum(case((negative, 1), else_=0)),
            *slices,
        )
        .where(where)
        .group_by(OpportunityRow.route_key)
    )
    out: dict[str, tuple[int, int]] = {}
    for key, count, negatives, *sums in rows:
        total = 0
        for (_, length), part in zip(_SLICES, sums, strict=True):
            total = total * 10**length + int(part)
        out[key] = (int(count), total - int(negatives) * 10**_DIGITS)
    return out


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def upsert_row(session: Session, entity: type[Any], row: dict[str, Any], keys: list[str]) -> None:
    """INSERT one row ... ON CONFLICT (keys) DO UPDATE every other column; forget cached rows."""
    _upsert(session, entity, [row], keys, lambda new: {k: new[k] for k in row if k not in keys})
    session.expire_all()


def _upsert(
    session: Session,
    entity: type[Any],
    rows: list[dict[str, Any]],
    keys: list[str],
    updates: Callable[[Any], Mapping[str, ColumnElement[Any] | Any]],
) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE, for each row (PostgreSQL and SQLite)."""
    if not rows:
        return
    dialect = _dialect(session)
    table = entity.__table__
    if dialect == "postgresql":
        pg = pg_insert(table)
        stmt: Any = pg.on_conflict_do_update(index_elements=keys, set_=updates(pg.excluded))
    elif dialect == "sqlite":
        lite = sqlite_insert(table)
        stmt = lite.on_conflict_do_update(index_elements=keys, set_=updates(lite.excluded))
    else:
        raise ConfigError(f"unsupported database {dialect!r}: use SQLite or PostgreSQL")
    session.execute(stmt, rows)
