"""scale-out (issue 18 finding 5): each gateway node records the ids of its keys (agent CA,
command-signing, relay CA, relay host key, audit) so a node with other keys is refused at start
(docs/scale-out.md "Keys")

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


def downgrade() -> None:
    with op.batch_alter_table("gateway_nodes") as batch:
        batch.drop_column("key_ids")
