"""The routes a bundle carries, so that self-scoring judges each route of a batch.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

Expand only: one new table, nothing dropped, renamed or changed, so the previous release's code
runs against this schema unchanged (it never reads or writes it). Release 0.1.0 still
refuses at start a database at a revision it does not ship: rolled back onto this schema it needs
this revision file added to its migrations (deploy/releases.toml, ``needs_newer_revision_files``);
from 0.2.0 on a release's upgrade checks the tables and columns it needs and leaves a newer
database alone (``arbx.store.migrate``, ADR 0025). ``bundle_routes`` lists the routes
of a bundle's transaction in order: each opportunity's route key and expected net profit at the
strategy's share. One ``executeMany`` transaction carries several routes (ADR 0033) and its
bundle's expected net profit is their sum at the shares paid, which no single opportunity
matches; with the list each route is matched to its opportunity, a failed simulation marks
every one ``never_real``, and a landed batch marks ``captured_us`` only the routes its swaps
ran. Bundles written before it have no rows here and are matched as before (one route, by the
bundle's expected net profit).
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _amount() -> sa.types.TypeEngine[Any]:
    return sa.Numeric(78, 0).with_variant(sa.String(79), "sqlite")


def _id() -> sa.types.TypeEngine[Any]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the table."""
    op.create_table(
        "bundle_routes",
        sa.Column("id", _id(), nullable=False),
        sa.Column("bundle_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("route_key", sa.String(1024), nullable=False),
        sa.Column("net_profit", _amount(), nullable=False),
        sa.ForeignKeyConstraint(
            ["bundle_id"], ["bundles.id"], name="fk_bundle_routes_bundle_id_bundles"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_bundle_routes"),
        sa.UniqueConstraint("bundle_id", "position", name="uq_bundle_routes_bundle_id_position"),
    )


def downgrade() -> None:
    """Drop the table."""
    op.drop_table("bundle_routes")
