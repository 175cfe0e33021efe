"""one idempotency record for readings batches: processed_batches folds into reading_batches

The agent channel recorded a readings batch in ``processed_batches`` after the ingest had
recorded it in ``reading_batches``: the same batch de-duplicated twice. Ingest (``fleet``)
keeps ``reading_batches`` only; every batch the channel knew and the ledger does not is
copied over (count 0: its readings are not known here), so a retry of it stays a duplicate.

Revision ID: 0016_one_batch_ledger
Revises: 0010_device_identity
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import printgate.store.models.base

revision: str = "0016_one_batch_ledger"
down_revision: str | Sequence[str] | None = "0010_device_identity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = ("0005_channel",)  # processed_batches

Utc = printgate.store.models.base.UtcDateTime


def upgrade() -> None:
    op.execute(
        "INSERT INTO reading_batches (agent_id, batch_id, received_at, count) "
        "SELECT p.agent_id, substr(p.batch_id, 1, 64), p.processed_at, 0 FROM processed_batches p "
        "WHERE length(p.batch_id) <= 64 AND NOT EXISTS (SELECT 1 FROM reading_batches r "
        "WHERE r.agent_id = p.agent_id AND r.batch_id = p.batch_id)"
    )
    op.drop_table("processed_batches")


def downgrade() -> None:
    op.create_table(
        "processed_batches",
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("batch_id", sa.String(length=128), nullable=False),
        sa.Column("processed_at", Utc(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("agent_id", "batch_id", name=op.f("pk_processed_batches")),
    )
    op.execute("INSERT INTO processed_batches (agent_id, batch_id, processed_at) "
               "SELECT agent_id, batch_id, received_at FROM reading_batches")
