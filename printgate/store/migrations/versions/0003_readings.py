"""readings

Revision ID: 0003_readings
Revises: 0001_core
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import printgate.store.models.base

revision: str = "0003_readings"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = ("readings",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reading_batches",
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.Column("received_at", printgate.store.models.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("agent_id", "batch_id", name=op.f("pk_reading_batches")),
    )
    op.create_table(
        "readings",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("serial", sa.String(length=128), nullable=True),
        sa.Column("taken_at", printgate.store.models.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("kinds", sa.String(length=64), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_readings")),
    )
    for col in ("agent_id", "ip", "serial", "taken_at"):
        op.create_index(op.f(f"ix_readings_{col}"), "readings", [col], unique=False)


def downgrade() -> None:
    for col in ("agent_id", "ip", "serial", "taken_at"):
        op.drop_index(op.f(f"ix_readings_{col}"), table_name="readings")
    op.drop_table("readings")
    op.drop_table("reading_batches")
