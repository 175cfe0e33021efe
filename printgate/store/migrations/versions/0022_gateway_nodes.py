"""scale-out (issue 18): gateway nodes with leases, the node holding each agent's stream,
the owning node of each DWA session

Revision ID: 0022_gateway_nodes
Revises: 0018_session_reasons
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import printgate.store.models.base

revision: str = "0022_gateway_nodes"
down_revision: str | Sequence[str] | None = "0018_session_reasons"
branch_labels: str | Sequence[str] | None = ("nodes",)
depends_on: str | Sequence[str] | None = None

Utc = printgate.store.models.base.UtcDateTime


def upgrade() -> None:
    op.create_table(
        "gateway_nodes",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("incarnation", sa.String(length=32), nullable=False),
        sa.Column("relay_address", sa.String(length=255), nullable=False),
        sa.Column("proxy_address", sa.String(length=255), nullable=False),
        sa.Column("channel_address", sa.String(length=255), nullable=False),
        sa.Column("started_at", Utc(timezone=True), nullable=False),
        sa.Column("renewed_at", Utc(timezone=True), nullable=False),
        sa.Column("lease_expires_at", Utc(timezone=True), nullable=False),
        sa.Column("stopped_at", Utc(timezone=True), nullable=True),
        sa.Column("taken_over_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_nodes")),
    )
    op.create_index(op.f("ix_gateway_nodes_state"), "gateway_nodes", ["state"])
    op.create_index(op.f("ix_gateway_nodes_lease_expires_at"), "gateway_nodes", ["lease_expires_at"])
    op.create_table(
        "agent_streams",
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("node_id", sa.String(length=128), nullable=False),
        sa.Column("since", Utc(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], name=op.f("fk_agent_streams_agent_id_agents")),
        sa.ForeignKeyConstraint(["node_id"], ["gateway_nodes.id"], name=op.f("fk_agent_streams_node_id_gateway_nodes")),
        sa.PrimaryKeyConstraint("agent_id", name=op.f("pk_agent_streams")),
    )
    op.create_index(op.f("ix_agent_streams_node_id"), "agent_streams", ["node_id"])
    with op.batch_alter_table("dwa_sessions") as batch:
        batch.add_column(sa.Column("node_id", sa.String(length=128), nullable=True))
        batch.create_index(batch.f("ix_dwa_sessions_node_id"), ["node_id"])


def downgrade() -> None:
    with op.batch_alter_table("dwa_sessions") as batch:
        batch.drop_index(batch.f("ix_dwa_sessions_node_id"))
        batch.drop_column("node_id")
    op.drop_index(op.f("ix_agent_streams_node_id"), table_name="agent_streams")
    op.drop_table("agent_streams")
    op.drop_index(op.f("ix_gateway_nodes_lease_expires_at"), table_name="gateway_nodes")
    op.drop_index(op.f("ix_gateway_nodes_state"), table_name="gateway_nodes")
    op.drop_table("gateway_nodes")
