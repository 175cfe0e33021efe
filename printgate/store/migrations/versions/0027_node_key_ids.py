"""scale-out (issue 18 finding 5): each gateway node records the ids of its keys (agent CA,
command-signing, relay CA, relay host key, audit) so a node with other keys is refused at start
(docs/scale-out.md "Keys"); and an index on an agent's sessions by expiry, read when the agent
connects to any node (the tunnels of sessions that are over, finding 4)

Revision ID: 0027_node_key_ids
Revises: 0022_gateway_nodes
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0027_node_key_ids"
down_revision: str | Sequence[str] | None = "0022_gateway_nodes"
branch_labels: str | Sequence[str] | None = ("node_key_ids",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("gateway_nodes") as batch:
        batch.add_column(sa.Column("key_ids", sa.Text(), nullable=True))  # JSON: key use -> id
    op.create_index("ix_dwa_sessions_agent_expires", "dwa_sessions", ["agent_id", "expires_at"])


def downgrade() -> None:
    op.drop_index("ix_dwa_sessions_agent_expires", table_name="dwa_sessions")
    with op.batch_alter_table("gateway_nodes") as batch:
        batch.drop_column("key_ids")
