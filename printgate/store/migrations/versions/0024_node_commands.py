"""scale-out (issue 18): commands between gateway nodes (a row per command, LISTEN/NOTIFY wakes the
target node; docs/scale-out.md "Cross-node commands")

Revision ID: 0024_node_commands
Revises: 0022_gateway_nodes
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import printgate.store.models.base

revision: str = "0024_node_commands"
down_revision: str | Sequence[str] | None = "0022_gateway_nodes"
branch_labels: str | Sequence[str] | None = ("node_commands",)
depends_on: str | Sequence[str] | None = None

Utc = printgate.store.models.base.UtcDateTime


def upgrade() -> None:
    op.create_table(
        "node_commands",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("batch_id", sa.String(length=32), nullable=True),
        sa.Column("target_node", sa.String(length=128), nullable=False),
        sa.Column("from_node", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", Utc(timezone=True), nullable=False),
        sa.Column("deadline", Utc(timezone=True), nullable=False),
        sa.Column("claimed_at", Utc(timezone=True), nullable=True),
        sa.Column("finished_at", Utc(timezone=True), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_node_commands")),
    )
    op.create_index(op.f("ix_node_commands_batch_id"), "node_commands", ["batch_id"])
    op.create_index("ix_node_commands_target_state", "node_commands", ["target_node", "state"])
    op.create_index("ix_node_commands_from_state", "node_commands", ["from_node", "state"])


def downgrade() -> None:
    op.drop_index("ix_node_commands_from_state", table_name="node_commands")
    op.drop_index("ix_node_commands_target_state", table_name="node_commands")
    op.drop_index(op.f("ix_node_commands_batch_id"), table_name="node_commands")
    op.drop_table("node_commands")
