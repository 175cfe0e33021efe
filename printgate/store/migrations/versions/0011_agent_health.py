"""agent health: the latest heartbeat health of each agent, readings drops per device/kind/reason

Revision ID: 0011_agent_health
Revises: 0001_core
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import printgate.store.models.base

revision: str = "0011_agent_health"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Utc = printgate.store.models.base.UtcDateTime


def upgrade() -> None:
    op.create_table(
        "agent_health",
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("reported_at", Utc(timezone=True), nullable=False),
        sa.Column("queue_length", sa.Integer(), nullable=False),
        sa.Column("queued_bytes", sa.BigInteger(), nullable=False),
        sa.Column("oldest_queued_at", Utc(timezone=True), nullable=True),
        sa.Column("degraded", sa.String(length=500), nullable=False),
        sa.Column("tasks", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], name=op.f("fk_agent_health_agent_id_agents")),
        sa.PrimaryKeyConstraint("agent_id", name=op.f("pk_agent_health")),
    )
    op.create_table(
        "readings_drops",
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("first_at", Utc(timezone=True), nullable=False),
        sa.Column("last_at", Utc(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], name=op.f("fk_readings_drops_agent_id_agents")),
        sa.PrimaryKeyConstraint("agent_id", "ip", "kind", "reason", name=op.f("pk_readings_drops")),
    )


def downgrade() -> None:
    op.drop_table("readings_drops")
    op.drop_table("agent_health")
