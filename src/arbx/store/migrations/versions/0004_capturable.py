"""What each block could have captured: a flag on each opportunity, and its sums per day.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

Expand only: ``opportunities.capturable`` (nullable: rows written before it stay NULL, "not
computed", and ``arbx report`` works them out when asked) marks the opportunities in their
block's best pool-disjoint set (``arbx.domain.capture``); ``pnl_opportunity_daily`` gains the
count and the net profit of those (default 0). On PostgreSQL the trigger function and the
rebuild function are replaced to keep the new sums too; code that does not know the columns
keeps working (it writes NULL flags, which count as not capturable, and never reads them).
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _sum() -> sa.types.TypeEngine[Any]:
    return sa.Numeric().with_variant(sa.String(100), "sqlite")


def _changed(capturable: bool) -> str:
    """The opportunities trigger function, with (or without) the capturable sums."""
    columns = "opportunities, expected_net_profit"
    updates = """opportunities = p.opportunities + EXCLUDED.opportunities,
                expected_net_profit = p.expected_net_profit + EXCLUDED.expected_net_profit"""
    new = "count(*), sum(net_profit)"
    negative = "-count(*), -sum(net_profit)"
    mixed_columns = "1 AS n, net_profit AS v"
    mixed_old = "-1, -net_profit"
    sums = "sum(n), sum(v)"
    having = "sum(n) <> 0 OR sum(v) <> 0"
    if capturable:
        columns += ", capturable_opportunities, capturable_net_profit"
        updates += """,
                capturable_opportunities =
                    p.capturable_opportunities + EXCLUDED.capturable_opportunities,
                capturable_net_profit = p.capturable_net_profit + EXCLUDED.capturable_net_profit"""
        flagged = "count(*) FILTER (WHERE capturable)"
        flagged_sum = "coalesce(sum(net_profit) FILTER (WHERE capturable), 0)"
        new = f"{new}, {flagged}, {flagged_sum}"
        negative = f"{negative}, -{flagged}, -{flagged_sum}"
        mixed_columns += (
            ", CASE WHEN capturable THEN 1 ELSE 0 END AS cn"
            ", CASE WHEN capturable THEN net_profit ELSE 0 END AS cv"
        )
        mixed_old += (
            ", CASE WHEN capturable THEN -1 ELSE 0 END"
            ", CASE WHEN capturable THEN -net_profit ELSE 0 END"
        )
        sums += ", sum(cn), sum(cv)"
        having += " OR sum(cn) <> 0 OR sum(cv) <> 0"
    return f"""
    CREATE OR REPLACE FUNCTION arbx_pnl_opportunities_changed() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO pnl_opportunity_daily AS p (run_id, day, {columns})
            SELECT run_id, arbx_utc_day(detected_at), {new}
            FROM arbx_new GROUP BY 1, 2
            ON CONFLICT (run_id, day) DO UPDATE
            SET {updates};
        ELSIF TG_OP = 'DELETE' THEN
            INSERT INTO pnl_opportunity_daily AS p (run_id, day, {columns})
            SELECT run_id, arbx_utc_day(detected_at), {negative}
            FROM arbx_old GROUP BY 1, 2
            ON CONFLICT (run_id, day) DO UPDATE
            SET {updates};
        ELSE
            INSERT INTO pnl_opportunity_daily AS p (run_id, day, {columns})
            SELECT run_id, day, {sums} FROM (
                SELECT run_id, arbx_utc_day(detected_at) AS day, {mixed_columns}
                FROM arbx_new
                UNION ALL
                SELECT run_id, arbx_utc_day(detected_at), {mixed_old} FROM arbx_old
            ) AS d
            GROUP BY 1, 2 HAVING {having}
            ON CONFLICT (run_id, day) DO UPDATE
            SET {updates};
        END IF;
        RETURN NULL;
    END $$
    """  # noqa: S608 - SQL text built from constants only


def _rebuild(capturable: bool) -> str:
    """The rebuild function's opportunities part, with (or without) the capturable sums."""
    columns = "run_id, day, opportunities, expected_net_profit"
    values = "run_id, arbx_utc_day(detected_at), count(*), sum(net_profit)"
    if capturable:
        columns += ", capturable_opportunities, capturable_net_profit"
        values += (
            ", count(*) FILTER (WHERE capturable),"
            " coalesce(sum(net_profit) FILTER (WHERE capturable), 0)"
        )
    return f"""
    CREATE OR REPLACE FUNCTION arbx_pnl_rebuild() RETURNS void
    LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM pnl_opportunity_daily;
        INSERT INTO pnl_opportunity_daily ({columns})
        SELECT {values}
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
    """  # noqa: S608 - SQL text built from constants only


def upgrade() -> None:
    """Add the flag and the daily sums; on PostgreSQL keep them by trigger."""
    op.add_column("opportunities", sa.Column("capturable", sa.Boolean(), nullable=True))
    op.add_column(
        "pnl_opportunity_daily",
        sa.Column("capturable_opportunities", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.add_column(
        "pnl_opportunity_daily",
        sa.Column("capturable_net_profit", _sum(), nullable=False, server_default="0"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_changed(capturable=True))
        op.execute(_rebuild(capturable=True))


def downgrade() -> None:
    """Back to the functions of 0003, then drop the columns."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_changed(capturable=False))
        op.execute(_rebuild(capturable=False))
    with op.batch_alter_table("pnl_opportunity_daily") as batch:
        batch.drop_column("capturable_net_profit")
        batch.drop_column("capturable_opportunities")
    with op.batch_alter_table("opportunities") as batch:
        batch.drop_column("capturable")
