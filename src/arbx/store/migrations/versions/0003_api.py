"""API: tokens, engine controls, heartbeats, the PnL aggregates PostgreSQL keeps by trigger, and
two indexes on opportunities: (route_key, id) for pages of one route, (block_hash) for the
engine's lookup of the ids it just inserted (a sequential scan without it: 300 ms at 1M rows).

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03

``pnl_opportunity_daily`` and ``pnl_bundle_daily`` are created on both databases (the models
describe them) but filled only on PostgreSQL, by triggers on ``opportunities`` (per statement,
with transition tables, so a bulk insert costs one grouped upsert) and on ``bundles`` (per row:
a bundle is inserted once and settled once). ``arbx_pnl_rebuild()`` recomputes both from the base
tables; the upgrade calls it once so that existing rows are counted. SQLite sums the base tables
when asked (an embedded database is small), so it has no triggers.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _id() -> sa.types.TypeEngine[Any]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _sum() -> sa.types.TypeEngine[Any]:
    return sa.Numeric().with_variant(sa.String(100), "sqlite")


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


# Days are UTC days as text, arbx_utc_day(t): independent of
# the session's DateStyle and time zone.

PG_FUNCTIONS = [
    # A UTC day as text, whatever the session's DateStyle and time zone ('YYYY-MM-DD' does not
    # depend on the locale, hence IMMUTABLE).
    """
    CREATE FUNCTION arbx_utc_day(t timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$ SELECT to_char((t AT TIME ZONE 'UTC')::date, 'YYYY-MM-DD') $$
    """,
    # The builder labels of a bundle: each distinct builder once, '-' when there is none.
    """
    CREATE FUNCTION arbx_bundle_builders(builders jsonb) RETURNS SETOF text
    LANGUAGE sql IMMUTABLE AS $$
        SELECT DISTINCT left(coalesce(e, '-'), 1024)
        FROM jsonb_array_elements_text(
            CASE WHEN jsonb_typeof(builders) = 'array' AND jsonb_array_length(builders) > 0
                 THEN builders ELSE '["-"]'::jsonb END
        ) AS e
    $$
    """,
    """
    CREATE FUNCTION arbx_pnl_opportunities_changed() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO pnl_opportunity_daily AS p
                (run_id, day, opportunities, expected_net_profit)
            SELECT run_id, arbx_utc_day(detected_at), count(*), sum(net_profit)
            FROM arbx_new GROUP BY 1, 2
            ON CONFLICT (run_id, day) DO UPDATE
            SET opportunities = p.opportunities + EXCLUDED.opportunities,
                expected_net_profit = p.expected_net_profit + EXCLUDED.expected_net_profit;
        ELSIF TG_OP = 'DELETE' THEN
            INSERT INTO pnl_opportunity_daily AS p
                (run_id, day, opportunities, expected_net_profit)
            SELECT run_id, arbx_utc_day(detected_at), -count(*), -sum(net_profit)
            FROM arbx_old GROUP BY 1, 2
            ON CONFLICT (run_id, day) DO UPDATE
            SET opportunities = p.opportunities + EXCLUDED.opportunities,
                expected_net_profit = p.expected_net_profit + EXCLUDED.expected_net_profit;
        ELSE
            INSERT INTO pnl_opportunity_daily AS p
                (run_id, day, opportunities, expected_net_profit)
            SELECT run_id, day, sum(n), sum(v) FROM (
                SELECT run_id, arbx_utc_day(detected_at) AS day, 1 AS n, net_profit AS v
                FROM arbx_new
                UNION ALL
                SELECT run_id, arbx_utc_day(detected_at), -1, -net_profit FROM arbx_old
            ) AS d
            GROUP BY 1, 2 HAVING sum(n) <> 0 OR sum(v) <> 0
            ON CONFLICT (run_id, day) DO UPDATE
            SET opportunities = p.opportunities + EXCLUDED.opportunities,
                expected_net_profit = p.expected_net_profit + EXCLUDED.expected_net_profit;
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION arbx_pnl_bundle_apply(b bundles, sign integer) RETURNS void
    LANGUAGE plpgsql AS $$
    DECLARE
        v_route text;
        v_included integer := CASE WHEN b.status = 'included' THEN sign ELSE 0 END;
        v_expected numeric :=
            CASE WHEN b.status = 'included' THEN sign * b.expected_net_profit ELSE 0 END;
    BEGIN
        SELECT o.route_key INTO v_route FROM opportunities o WHERE o.id = b.opportunity_id;
        INSERT INTO pnl_bundle_daily AS p (run_id, day, dim, label, bundles, included,
                                           expected_net_profit, realized_profit, gas_cost)
        SELECT b.run_id, arbx_utc_day(b.sent_at), x.dim, x.label, sign, v_included,
               v_expected, sign * coalesce(b.realized_profit, 0), sign * coalesce(b.gas_cost, 0)
        FROM (
            SELECT 'all' AS dim, '' AS label
            UNION ALL SELECT 'route', coalesce(v_route, '-')
            UNION ALL SELECT 'builder', g FROM arbx_bundle_builders(b.builders_json) AS g
        ) AS x
        ON CONFLICT (run_id, day, dim, label) DO UPDATE
        SET bundles = p.bundles + EXCLUDED.bundles,
            included = p.included + EXCLUDED.included,
            expected_net_profit = p.expected_net_profit + EXCLUDED.expected_net_profit,
            realized_profit = p.realized_profit + EXCLUDED.realized_profit,
            gas_cost = p.gas_cost + EXCLUDED.gas_cost;
    END $$
    """,
    """
    CREATE FUNCTION arbx_pnl_bundles_changed() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            PERFORM arbx_pnl_bundle_apply(OLD, -1);
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            PERFORM arbx_pnl_bundle_apply(NEW, 1);
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION arbx_pnl_rebuild() RETURNS void
    LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM pnl_opportunity_daily;
        INSERT INTO pnl_opportunity_daily (run_id, day, opportunities, expected_net_profit)
        SELECT run_id, arbx_utc_day(detected_at), count(*), sum(net_profit)
        FROM opportunities GROUP BY 1, 2;
        DELETE FROM pnl_bundle_daily;
        INSERT INTO pnl_bundle_daily (run_id, day, dim, label, bundles, included,
                                      expected_net_profit, realized_profit, gas_cost)
        SELECT b.run_id, arbx_utc_day(b.sent_at), x.dim, x.label, count(*),
               count(*) FILTER (WHERE b.status = 'included'),
               coalesce(sum(b.expected_net_profit) FILTER (WHERE b.status = 'included'), 0),
               coalesce(sum(b.realized_profit), 0), coalesce(sum(b.gas_cost), 0)
        FROM bundles b
        LEFT JOIN opportunities o ON o.id = b.opportunity_id
        CROSS JOIN LATERAL (
            SELECT 'all' AS dim, '' AS label
            UNION ALL SELECT 'route', coalesce(o.route_key, '-')
            UNION ALL SELECT 'builder', g FROM arbx_bundle_builders(b.builders_json) AS g
        ) AS x
        GROUP BY 1, 2, 3, 4;
    END $$
    """,
]

PG_TRIGGERS = [
    """
    CREATE TRIGGER arbx_pnl_opportunities_inserted AFTER INSERT ON opportunities
    REFERENCING NEW TABLE AS arbx_new
    FOR EACH STATEMENT EXECUTE FUNCTION arbx_pnl_opportunities_changed()
    """,
    """
    CREATE TRIGGER arbx_pnl_opportunities_deleted AFTER DELETE ON opportunities
    REFERENCING OLD TABLE AS arbx_old
    FOR EACH STATEMENT EXECUTE FUNCTION arbx_pnl_opportunities_changed()
    """,
    """
    CREATE TRIGGER arbx_pnl_opportunities_updated AFTER UPDATE ON opportunities
    REFERENCING OLD TABLE AS arbx_old NEW TABLE AS arbx_new
    FOR EACH STATEMENT EXECUTE FUNCTION arbx_pnl_opportunities_changed()
    """,
    """
    CREATE TRIGGER arbx_pnl_bundles_inserted_deleted AFTER INSERT OR DELETE ON bundles
    FOR EACH ROW EXECUTE FUNCTION arbx_pnl_bundles_changed()
    """,
    """
    CREATE TRIGGER arbx_pnl_bundles_updated AFTER UPDATE ON bundles
    FOR EACH ROW WHEN (
        (OLD.run_id, OLD.opportunity_id, OLD.builders_json, OLD.status,
         OLD.expected_net_profit, OLD.realized_profit, OLD.gas_cost, OLD.sent_at)
        IS DISTINCT FROM
        (NEW.run_id, NEW.opportunity_id, NEW.builders_json, NEW.status,
         NEW.expected_net_profit, NEW.realized_profit, NEW.gas_cost, NEW.sent_at)
    )
    EXECUTE FUNCTION arbx_pnl_bundles_changed()
    """,
]

PG_DROP = [
    "DROP TRIGGER IF EXISTS arbx_pnl_bundles_updated ON bundles",
    "DROP TRIGGER IF EXISTS arbx_pnl_bundles_inserted_deleted ON bundles",
    "DROP TRIGGER IF EXISTS arbx_pnl_opportunities_updated ON opportunities",
    "DROP TRIGGER IF EXISTS arbx_pnl_opportunities_deleted ON opportunities",
    "DROP TRIGGER IF EXISTS arbx_pnl_opportunities_inserted ON opportunities",
    "DROP FUNCTION IF EXISTS arbx_pnl_rebuild()",
    "DROP FUNCTION IF EXISTS arbx_pnl_bundles_changed()",
    "DROP FUNCTION IF EXISTS arbx_pnl_bundle_apply(bundles, integer)",
    "DROP FUNCTION IF EXISTS arbx_pnl_opportunities_changed()",
    "DROP FUNCTION IF EXISTS arbx_bundle_builders(jsonb)",
    "DROP FUNCTION IF EXISTS arbx_utc_day(timestamptz)",
]


def upgrade() -> None:
    """Create the API tables; on PostgreSQL also the PnL triggers, then fill the aggregates."""
    op.create_table(
        "api_tokens",
        sa.Column("id", _id(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("revoked_at", _time(), nullable=True),
        sa.Column("last_used_at", _time(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.UniqueConstraint("name", name="uq_api_tokens_name"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )
    op.create_table(
        "engine_controls",
        sa.Column("chain_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("mode_ceiling", sa.String(16), nullable=True),
        sa.Column("limits_json", _json(), nullable=True),
        sa.Column("updated_at", _time(), nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", name="pk_engine_controls"),
    )
    op.create_table(
        "heartbeats",
        sa.Column("component", sa.String(32), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.Column("head_block", sa.BigInteger(), nullable=True),
        sa.Column("synced_block", sa.BigInteger(), nullable=True),
        sa.Column("at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("component", "chain_id", name="pk_heartbeats"),
    )
    op.create_table(
        "pnl_opportunity_daily",
        sa.Column("run_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("opportunities", sa.BigInteger(), nullable=False),
        sa.Column("expected_net_profit", _sum(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "day", name="pk_pnl_opportunity_daily"),
    )
    op.create_table(
        "pnl_bundle_daily",
        sa.Column("run_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("dim", sa.String(8), nullable=False),
        sa.Column("label", sa.String(1024), nullable=False),
        sa.Column("bundles", sa.BigInteger(), nullable=False),
        sa.Column("included", sa.BigInteger(), nullable=False),
        sa.Column("expected_net_profit", _sum(), nullable=False),
        sa.Column("realized_profit", _sum(), nullable=False),
        sa.Column("gas_cost", _sum(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "day", "dim", "label", name="pk_pnl_bundle_daily"),
    )
    op.create_index("ix_opportunities_route_key_id", "opportunities", ["route_key", "id"])
    op.create_index("ix_opportunities_block_hash", "opportunities", ["block_hash"])
    if op.get_bind().dialect.name == "postgresql":
        for statement in (*PG_FUNCTIONS, *PG_TRIGGERS):
            op.execute(statement)
        op.execute("SELECT arbx_pnl_rebuild()")


def downgrade() -> None:
    """Drop the triggers and functions (PostgreSQL), then the tables."""
    if op.get_bind().dialect.name == "postgresql":
        for statement in PG_DROP:
            op.execute(statement)
    op.drop_index("ix_opportunities_block_hash", table_name="opportunities")
    op.drop_index("ix_opportunities_route_key_id", table_name="opportunities")
    for table in (
        "pnl_bundle_daily",
        "pnl_opportunity_daily",
        "heartbeats",
        "engine_controls",
        "api_tokens",
    ):
        op.drop_table(table)
