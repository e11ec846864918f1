"""What each release decided on the window its image ships, recorded by its engine at start.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04

Expand only: one new table, nothing dropped, renamed or changed, so the previous release's code
runs against this schema unchanged (it never reads or writes it). Release 0.1.0 still
refuses at start a database at a revision it does not ship: rolled back onto this schema it needs
this revision file added to its migrations (deploy/releases.toml, ``needs_newer_revision_files``);
from 0.2.0 on a release's upgrade checks the tables and columns it needs and leaves a newer
database alone (``arbx.store.migrate``, ADR 0025). ``release_replays`` holds, per release and
window (the SHA-256 of the window file), the decisions that release's code made on it (the
blocks of ``arbx replay --json`` as canonical JSON, gzip-compressed) and their digest: the active
release's side of the replay that ``arbx release compare --replay-shipped`` runs before a
promotion (ADR 0037).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the table."""
    op.create_table(
        "release_replays",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("release", sa.String(64), nullable=False),
        sa.Column("window_digest", sa.String(71), nullable=False),
        sa.Column("digest", sa.String(71), nullable=False),
        sa.Column("blocks", sa.Integer(), nullable=False),
        sa.Column("opportunities", sa.Integer(), nullable=False),
        sa.Column("decisions_gz", sa.LargeBinary(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_release_replays"),
        sa.UniqueConstraint(
            "release", "window_digest", name="uq_release_replays_release_window_digest"
        ),
    )


def downgrade() -> None:
    """Drop the table."""
    op.drop_table("release_replays")
