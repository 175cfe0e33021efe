"""audit: hash-chained records, personal values, checkpoints, chain head

Revision ID: 0002_audit
Revises: 0001_core
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import printgate.store.models.base

revision: str = "0002_audit"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = ("audit",)
depends_on: str | Sequence[str] | None = None

_BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_records",
        sa.Column("seq", _BIG, autoincrement=False, nullable=False),
        sa.Column("at", printgate.store.models.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=128), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("dealer_id", sa.String(length=64), nullable=True),
        sa.Column("customer_id", sa.String(length=64), nullable=True),
        sa.Column("device_id", sa.String(length=64), nullable=True),
        sa.Column("session_id", sa.String(length=64), nullable=True),
        sa.Column("entry", sa.Text(), nullable=True),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("prev", sa.String(length=64), nullable=False),
        sa.Column("pruned_by", _BIG, nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_records")),
    )
    for col in ("at", "type", "outcome", "dealer_id", "customer_id", "device_id", "session_id"):
        op.create_index(op.f(f"ix_audit_records_{col}"), "audit_records", [col], unique=False)
    op.create_table(
        "audit_personal",
        sa.Column("seq", _BIG, autoincrement=False, nullable=False),
        sa.Column("actor", sa.String(length=320), nullable=True),
        sa.Column("source_ip", sa.String(length=64), nullable=True),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_personal")),
    )
    op.create_index(op.f("ix_audit_personal_actor"), "audit_personal", ["actor"], unique=False)
    op.create_index(op.f("ix_audit_personal_source_ip"), "audit_personal", ["source_ip"], unique=False)
    op.create_table(
        "audit_checkpoints",
        sa.Column("tree_size", _BIG, autoincrement=False, nullable=False),
        sa.Column("root", sa.String(length=64), nullable=False),
        sa.Column("head", sa.String(length=64), nullable=False),
        sa.Column("at", sa.String(length=40), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.Column("frontier", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("tree_size", name=op.f("pk_audit_checkpoints")),
    )
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", _BIG, nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": "0" * 64}])


def downgrade() -> None:
    op.drop_table("audit_head")
    op.drop_table("audit_checkpoints")
    op.drop_index(op.f("ix_audit_personal_source_ip"), table_name="audit_personal")
    op.drop_index(op.f("ix_audit_personal_actor"), table_name="audit_personal")
    op.drop_table("audit_personal")
    for col in ("at", "type", "outcome", "dealer_id", "customer_id", "device_id", "session_id"):
        op.drop_index(op.f(f"ix_audit_records_{col}"), table_name="audit_records")
    op.drop_table("audit_records")
