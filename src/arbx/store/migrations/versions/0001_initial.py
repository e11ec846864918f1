"""Initial schema: chains, blocks, tokens, pools, runs, opportunities, parity checks.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Amounts are NUMERIC(78, 0) on PostgreSQL and 79-character sortable decimal text on SQLite (see
``arbx.store.models.UInt256``); the types are spelled out here so that this revision keeps
producing the same schema whatever later becomes of the models.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _amount() -> sa.types.TypeEngine[Any]:
    return sa.Numeric(78, 0).with_variant(sa.String(79), "sqlite")


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _id() -> sa.types.TypeEngine[Any]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the initial tables and their indexes."""
    op.create_table(
        "chains",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_chains"),
    )
    op.create_table(
        "blocks",
        sa.Column("id", _id(), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(66), nullable=False),
        sa.Column("parent_hash", sa.String(66), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("seen_at", _time(), nullable=False),
        sa.Column("processed_at", _time(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("reorged", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(["chain_id"], ["chains.id"], name="fk_blocks_chain_id_chains"),
        sa.PrimaryKeyConstraint("id", name="pk_blocks"),
        sa.UniqueConstraint("chain_id", "hash", name="uq_blocks_chain_id_hash"),
    )
    op.create_index("ix_blocks_chain_id_number", "blocks", ["chain_id", "number"])
    op.create_table(
        "tokens",
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("address", sa.String(42), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=True),
        sa.Column("decimals", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["chain_id"], ["chains.id"], name="fk_tokens_chain_id_chains"),
        sa.PrimaryKeyConstraint("chain_id", "address", name="pk_tokens"),
    )
    op.create_table(
        "pools",
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("address", sa.String(42), nullable=False),
        sa.Column("family", sa.String(32), nullable=False),
        sa.Column("venue", sa.String(64), nullable=True),
        sa.Column("token0", sa.String(42), nullable=False),
        sa.Column("token1", sa.String(42), nullable=False),
        sa.Column("fee", sa.Integer(), nullable=False),
        sa.Column("tick_spacing", sa.Integer(), nullable=True),
        sa.Column("created_block", sa.BigInteger(), nullable=True),
        sa.Column("last_synced_block", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["chain_id"], ["chains.id"], name="fk_pools_chain_id_chains"),
        sa.ForeignKeyConstraint(
            ["chain_id", "token0"],
            ["tokens.chain_id", "tokens.address"],
            name="fk_pools_chain_id_token0_tokens",
        ),
        sa.ForeignKeyConstraint(
            ["chain_id", "token1"],
            ["tokens.chain_id", "tokens.address"],
            name="fk_pools_chain_id_token1_tokens",
        ),
        sa.PrimaryKeyConstraint("chain_id", "address", name="pk_pools"),
    )
    op.create_table(
        "runs",
        sa.Column("id", _id(), nullable=False),
        sa.Column("started_at", _time(), nullable=False),
        sa.Column("ended_at", _time(), nullable=True),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("settings_json", _json(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("blocks_seen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("summary_json", _json(), nullable=True),
        sa.ForeignKeyConstraint(["chain_id"], ["chains.id"], name="fk_runs_chain_id_chains"),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )
    op.create_table(
        "opportunities",
        sa.Column("id", _id(), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(66), nullable=False),
        sa.Column("route_key", sa.String(1024), nullable=False),
        sa.Column("pools_json", _json(), nullable=False),
        sa.Column("tokens_json", _json(), nullable=False),
        sa.Column("amount_in", _amount(), nullable=False),
        sa.Column("amounts_json", _json(), nullable=False),
        sa.Column("amount_out", _amount(), nullable=False),
        sa.Column("gross_profit", _amount(), nullable=False),
        sa.Column("gas_units", sa.BigInteger(), nullable=False),
        sa.Column("gas_cost", _amount(), nullable=False),
        sa.Column("builder_payment", _amount(), nullable=False),
        sa.Column("net_profit", _amount(), nullable=False),
        sa.Column("detected_at", _time(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["chain_id"], ["chains.id"], name="fk_opportunities_chain_id_chains"
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_opportunities_run_id_runs"),
        sa.PrimaryKeyConstraint("id", name="pk_opportunities"),
    )
    op.create_index("ix_opportunities_run_id_id", "opportunities", ["run_id", "id"])
    op.create_index("ix_opportunities_block_number", "opportunities", ["block_number"])
    op.create_index("ix_opportunities_route_key", "opportunities", ["route_key"])
    op.create_index("ix_opportunities_net_profit", "opportunities", ["net_profit"])
    op.create_table(
        "parity_checks",
        sa.Column("id", _id(), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("pools_checked", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("detail_json", _json(), nullable=True),
        sa.Column("at", _time(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_parity_checks_run_id_runs"),
        sa.PrimaryKeyConstraint("id", name="pk_parity_checks"),
    )
    op.create_index("ix_parity_checks_run_id_id", "parity_checks", ["run_id", "id"])


def downgrade() -> None:
    """Drop everything the upgrade created, dependents first."""
    op.drop_index("ix_parity_checks_run_id_id", table_name="parity_checks")
    op.drop_table("parity_checks")
    for name in ("net_profit", "route_key", "block_number", "run_id_id"):
        op.drop_index(f"ix_opportunities_{name}", table_name="opportunities")
    op.drop_table("opportunities")
    op.drop_table("runs")
    op.drop_table("pools")
    op.drop_table("tokens")
    op.drop_index("ix_blocks_chain_id_number", table_name="blocks")
    op.drop_table("blocks")
    op.drop_table("chains")
