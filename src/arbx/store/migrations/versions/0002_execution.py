"""Execution and risk: bundles, transactions, risk state, kill switch, stage history, signer
leases, audit log.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02

Types are spelled out, as in 0001, so that this revision keeps producing the same schema.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
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
    """Create the execution and risk tables and their indexes."""
    op.create_table(
        "bundles",
        sa.Column("id", _id(), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("opportunity_id", sa.BigInteger(), nullable=True),
        sa.Column("signer", sa.String(42), nullable=True),
        sa.Column("builders_json", _json(), nullable=False),
        sa.Column("target_block", sa.BigInteger(), nullable=False),
        sa.Column("replacement_uuid", sa.String(64), nullable=True),
        sa.Column("bundle_hash", sa.String(66), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("tx_hashes_json", _json(), nullable=False),
        sa.Column("included_block", sa.BigInteger(), nullable=True),
        sa.Column("included_block_hash", sa.String(66), nullable=True),
        sa.Column("gas_used", sa.BigInteger(), nullable=True),
        sa.Column("gas_cost", _amount(), nullable=True),
        sa.Column("expected_net_profit", _amount(), nullable=False),
        sa.Column("realized_profit", _amount(), nullable=True),
        sa.Column("sent_at", _time(), nullable=False),
        sa.Column("settled_at", _time(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_bundles_run_id_runs"),
        sa.ForeignKeyConstraint(
            ["opportunity_id"],
            ["opportunities.id"],
            name="fk_bundles_opportunity_id_opportunities",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_bundles"),
    )
    op.create_index("ix_bundles_run_id_id", "bundles", ["run_id", "id"])
    op.create_index("ix_bundles_signer_sent_at", "bundles", ["signer", "sent_at"])
    op.create_index("ix_bundles_status", "bundles", ["status"])
    op.create_table(
        "transactions",
        sa.Column("id", _id(), nullable=False),
        sa.Column("bundle_id", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(66), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.Column("from_address", sa.String(42), nullable=False),
        sa.Column("to_address", sa.String(42), nullable=True),
        sa.Column("gas_limit", sa.BigInteger(), nullable=False),
        sa.Column("max_fee", _amount(), nullable=False),
        sa.Column("priority_fee", _amount(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("gas_used", sa.BigInteger(), nullable=True),
        sa.Column("effective_gas_price", _amount(), nullable=True),
        sa.ForeignKeyConstraint(
            ["bundle_id"], ["bundles.id"], name="fk_transactions_bundle_id_bundles"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_transactions"),
        sa.UniqueConstraint("bundle_id", "hash", name="uq_transactions_bundle_id_hash"),
    )
    op.create_index("ix_transactions_hash", "transactions", ["hash"])
    op.create_table(
        "risk_state",
        sa.Column("chain_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("key_address", sa.String(42), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("stage_entered_at", _time(), nullable=False),
        sa.Column("reason", sa.String(1024), nullable=True),
        sa.Column("updated_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", "key_address", name="pk_risk_state"),
    )
    op.create_table(
        "kill_switch",
        sa.Column("chain_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("engaged", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(1024), nullable=True),
        sa.Column("actor", sa.String(128), nullable=True),
        sa.Column("updated_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", name="pk_kill_switch"),
    )
    op.create_table(
        "stage_history",
        sa.Column("id", _id(), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("key_address", sa.String(42), nullable=False),
        sa.Column("at", _time(), nullable=False),
        sa.Column("from_stage", sa.Integer(), nullable=False),
        sa.Column("to_stage", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(1024), nullable=False),
        sa.Column("evidence_json", _json(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_stage_history"),
    )
    op.create_index(
        "ix_stage_history_chain_id_key_address_at",
        "stage_history",
        ["chain_id", "key_address", "at"],
    )
    op.create_table(
        "signer_leases",
        sa.Column("key_address", sa.String(42), nullable=False),
        sa.Column("holder_id", sa.String(128), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("acquired_at", _time(), nullable=False),
        sa.Column("renewed_at", _time(), nullable=False),
        sa.Column("expires_at", _time(), nullable=True),
        sa.PrimaryKeyConstraint("key_address", name="pk_signer_leases"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", _id(), nullable=False),
        sa.Column("at", _time(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("before_json", _json(), nullable=True),
        sa.Column("after_json", _json(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])


def downgrade() -> None:
    """Drop everything the upgrade created, dependents first."""
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("signer_leases")
    op.drop_index("ix_stage_history_chain_id_key_address_at", table_name="stage_history")
    op.drop_table("stage_history")
    op.drop_table("kill_switch")
    op.drop_table("risk_state")
    op.drop_index("ix_transactions_hash", table_name="transactions")
    op.drop_table("transactions")
    for name in ("status", "signer_sent_at", "run_id_id"):
        op.drop_index(f"ix_bundles_{name}", table_name="bundles")
    op.drop_table("bundles")
