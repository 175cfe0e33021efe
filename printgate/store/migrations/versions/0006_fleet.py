"""fleet: readings mapped to devices; current supplies, open alerts, device state

Revision ID: 0006_fleet
Revises: 0003_readings
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import printgate.store.models.base

revision: str = "0006_fleet"
down_revision: str | Sequence[str] | None = "0003_readings"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DT = printgate.store.models.base.UtcDateTime


def upgrade() -> None:
    with op.batch_alter_table("readings") as batch:
        batch.add_column(sa.Column("device_id", sa.String(length=64), nullable=True))
    op.create_index("ix_readings_device_taken", "readings", ["device_id", "taken_at"], unique=False)
    op.create_table(
        "device_states",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("last_reading_at", UTC_DT(timezone=True), nullable=True),
        sa.Column("counters_at", UTC_DT(timezone=True), nullable=True),
        sa.Column("supplies_at", UTC_DT(timezone=True), nullable=True),
        sa.Column("alerts_at", UTC_DT(timezone=True), nullable=True),
        sa.Column("page_count", sa.BigInteger(), nullable=True),
        sa.Column("printer_status", sa.String(length=32), nullable=True),
        sa.Column("device_status", sa.String(length=32), nullable=True),
        sa.Column("error_state", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_device_states")),
    )
    op.create_table(
        "device_supplies",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("supply_index", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(length=1024), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("colour", sa.String(length=64), nullable=True),
        sa.Column("unit", sa.String(length=64), nullable=False),
        sa.Column("max_capacity", sa.Integer(), nullable=True),
        sa.Column("level", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("percent", sa.Float(), nullable=True),
        sa.Column("taken_at", UTC_DT(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "supply_index", name=op.f("pk_device_supplies")),
    )
    op.create_table(
        "device_alerts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("alert_key", sa.String(length=200), nullable=False),
        sa.Column("alert_index", sa.Integer(), nullable=False),
        sa.Column("severity", sa.String(length=32), nullable=False),
        sa.Column("group", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=1024), nullable=False),
        sa.Column("training_level", sa.String(length=64), nullable=True),
        sa.Column("raised_at", UTC_DT(timezone=True), nullable=False),
        sa.Column("last_seen_at", UTC_DT(timezone=True), nullable=False),
        sa.Column("cleared_at", UTC_DT(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_alerts")),
    )
    op.create_index("ix_device_alerts_device_open", "device_alerts", ["device_id", "cleared_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_device_alerts_device_open", table_name="device_alerts")
    op.drop_table("device_alerts")
    op.drop_table("device_supplies")
    op.drop_table("device_states")
    op.drop_index("ix_readings_device_taken", table_name="readings")
    with op.batch_alter_table("readings") as batch:
        batch.drop_column("device_id")
