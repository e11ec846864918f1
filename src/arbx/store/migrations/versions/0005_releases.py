"""Releases: per-block results of every engine, the signer lock's epochs, the signatures made in
each epoch, and the handover requests between releases.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

Expand only: four new tables, nothing dropped, renamed or changed, so the previous release's code
runs against this schema unchanged (it never reads or writes them). Release 0.1.0 still
refuses at start a database at a revision it does not ship: rolled back onto this schema it needs
this revision file added to its migrations (deploy/releases.toml, ``needs_newer_revision_files``);
from 0.2.0 on a release's upgrade checks the tables and columns it needs and leaves a newer
database alone (``arbx.store.migrate``, ADR 0025). ``block_results`` holds what one
engine (active or standby, under its release) made of each block, for ``arbx release compare``;
``signer_epochs`` and ``signatures`` are the history ``arbx release audit`` checks;
``release_handovers`` carries ``arbx release promote``'s request between the two engines.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
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
    """Create the release tables and their indexes."""
    op.create_table(
        "block_results",
        sa.Column("id", _id(), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("release", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(66), nullable=False),
        sa.Column("opportunities", sa.Integer(), nullable=False),
        sa.Column("expected_net_profit", _amount(), nullable=False),
        sa.Column("routes_json", _json(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("parity_checked", sa.Boolean(), nullable=True),
        sa.Column("parity_failures", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("errors", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("recorded_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_block_results"),
    )
    op.create_index(
        "ix_block_results_release_chain_id_block_number",
        "block_results",
        ["release", "chain_id", "block_number"],
    )
    op.create_index(
        "ix_block_results_run_id_block_number", "block_results", ["run_id", "block_number"]
    )
    op.create_table(
        "signer_epochs",
        sa.Column("id", _id(), nullable=False),
        sa.Column("key_address", sa.String(42), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("holder_id", sa.String(128), nullable=False),
        sa.Column("release", sa.String(64), nullable=True),
        sa.Column("chain_id", sa.BigInteger(), nullable=True),
        sa.Column("acquired_at", _time(), nullable=False),
        sa.Column("released_at", _time(), nullable=True),
        sa.Column("end_kind", sa.String(16), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_signer_epochs"),
        sa.UniqueConstraint("key_address", "epoch", name="uq_signer_epochs_key_address_epoch"),
    )
    op.create_table(
        "signatures",
        sa.Column("id", _id(), nullable=False),
        sa.Column("key_address", sa.String(42), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("holder_id", sa.String(128), nullable=False),
        sa.Column("tx_hash", sa.String(66), nullable=False),
        sa.Column("signed_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_signatures"),
    )
    op.create_index("ix_signatures_key_address_epoch", "signatures", ["key_address", "epoch"])
    op.create_table(
        "release_handovers",
        sa.Column("id", _id(), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("to_release", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("requested_at", _time(), nullable=False),
        sa.Column("requested_by", sa.String(128), nullable=False),
        sa.Column("key_address", sa.String(42), nullable=True),
        sa.Column("from_release", sa.String(64), nullable=True),
        sa.Column("from_holder", sa.String(128), nullable=True),
        sa.Column("from_epoch", sa.BigInteger(), nullable=True),
        sa.Column("released_at", _time(), nullable=True),
        sa.Column("to_holder", sa.String(128), nullable=True),
        sa.Column("to_epoch", sa.BigInteger(), nullable=True),
        sa.Column("taken_at", _time(), nullable=True),
        sa.Column("reason", sa.String(1024), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_release_handovers"),
    )
    op.create_index(
        "ix_release_handovers_chain_id_state", "release_handovers", ["chain_id", "state"]
    )


def downgrade() -> None:
    """Drop the release tables."""
    op.drop_index("ix_release_handovers_chain_id_state", table_name="release_handovers")
    op.drop_table("release_handovers")
    op.drop_index("ix_signatures_key_address_epoch", table_name="signatures")
    op.drop_table("signatures")
    op.drop_table("signer_epochs")
    op.drop_index("ix_block_results_run_id_block_number", table_name="block_results")
    op.drop_index("ix_block_results_release_chain_id_block_number", table_name="block_results")
    op.drop_table("block_results")
