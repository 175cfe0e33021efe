"""the readings batch ledger keeps a hash of each batch's content

A batch id re-sent with DIFFERENT content was acknowledged as a duplicate (its readings lost
without a word). ``reading_batches.content_hash`` (SHA-256, hex) lets ingest tell a true retry
(same content: duplicate) from a reused id (different content: refused with a reason). Batches
recorded before this revision have none and stay plain duplicates.

Revision ID: 0021_batch_content_hash
Revises: 0016_one_batch_ledger
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021_batch_content_hash"
down_revision: str | Sequence[str] | None = "0016_one_batch_ledger"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("reading_batches", sa.Column("content_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reading_batches") as batch:
        batch.drop_column("content_hash")
