"""audit: witness cosignatures of checkpoints

Revision ID: 0008_audit_witness
Revises: 0002_audit
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import printgate.store.models.base

revision: str = "0008_audit_witness"
down_revision: str | Sequence[str] | None = "0002_audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_cosignatures",
        sa.Column("witness", sa.String(length=32), nullable=False),
        sa.Column("tree_size", _BIG, autoincrement=False, nullable=False),
        sa.Column("witness_public_key", sa.String(length=64), nullable=False),
        sa.Column("cosigned_at", sa.String(length=40), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.Column("root", sa.String(length=64), nullable=False),
        sa.Column("head", sa.String(length=64), nullable=False),
        sa.Column("checkpoint_at", sa.String(length=40), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("checkpoint_signature", sa.String(length=128), nullable=False),
        sa.Column("received_at", printgate.store.models.base.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("witness", "tree_size", name=op.f("pk_audit_cosignatures")),
    )


def downgrade() -> None:
    op.drop_table("audit_cosignatures")
