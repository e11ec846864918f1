"""Self-scoring: what became of each opportunity in the blocks after it was found.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

Expand only: one new table, nothing dropped, renamed or changed, so the previous release's code
runs against this schema unchanged (it never reads or writes it). Release 0.1.0 still
refuses at start a database at a revision it does not ship: rolled back onto this schema it needs
this revision file added to its migrations (deploy/releases.toml, ``needs_newer_revision_files``);
from 0.2.0 on a release's upgrade checks the tables and columns it needs and leaves a newer
database alone (``arbx.store.migrate``, ADR 0025). ``opportunity_scores`` holds one
row per scored opportunity: its outcome over the window of blocks after it (captured by us, by
someone else, still open, closed by ordinary trading, never real), the block that decided it,
and, when someone else took it, their address, transaction and profit (``arbx.domain.scoring``).
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _amount() -> sa.types.TypeEngine[Any]:
    return sa.Numeric(78, 0).with_variant(sa.String(79), "sqlite")


def _id() -> sa.types.TypeEngine[Any]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the scores table and its index."""
    op.create_table(
        "opportunity_scores",
        sa.Column("id", _id(), nullable=False),
        sa.Column("opportunity_id", sa.BigInteger(), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("window", sa.Integer(), nullable=False),
        sa.Column("decided_block", sa.BigInteger(), nullable=True),
        sa.Column("taker", sa.String(42), nullable=True),
        sa.Column("taker_tx", sa.String(66), nullable=True),
        sa.Column("taker_profit", _amount(), nullable=True),
        sa.Column("token", sa.String(42), nullable=True),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_opportunity_scores"),
        sa.UniqueConstraint("opportunity_id", name="uq_opportunity_scores_opportunity_id"),
    )
    op.create_index(
        "ix_opportunity_scores_run_id_outcome", "opportunity_scores", ["run_id", "outcome"]
    )


def downgrade() -> None:
    """Drop the scores table."""
    op.drop_index("ix_opportunity_scores_run_id_outcome", table_name="opportunity_scores")
    op.drop_table("opportunity_scores")
