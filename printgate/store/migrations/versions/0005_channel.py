"""agent channel: enrolment tokens, agent certificates, processed batches

Revision ID: 0005_channel
Revises: 0001_core
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import printgate.store.models.base

revision: str = "0005_channel"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = ("channel",)
depends_on: str | Sequence[str] | None = None

Utc = printgate.store.models.base.UtcDateTime


def upgrade() -> None:
    op.create_table(
        "enrolment_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=False),
        sa.Column("created_at", Utc(timezone=True), nullable=False),
        sa.Column("expires_at", Utc(timezone=True), nullable=False),
        sa.Column("used_at", Utc(timezone=True), nullable=True),
        sa.Column("used_by_agent", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_enrolment_tokens_site_id_sites")),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_enrolment_tokens")),
    )
    op.create_index(op.f("ix_enrolment_tokens_site_id"), "enrolment_tokens", ["site_id"], unique=False)
    op.create_table(
        "agent_certificates",
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("not_before", Utc(timezone=True), nullable=False),
        sa.Column("not_after", Utc(timezone=True), nullable=False),
        sa.Column("revoked_at", Utc(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], name=op.f("fk_agent_certificates_agent_id_agents")),
        sa.PrimaryKeyConstraint("serial", name=op.f("pk_agent_certificates")),
    )
    op.create_index(op.f("ix_agent_certificates_agent_id"), "agent_certificates", ["agent_id"], unique=False)
    op.create_index(op.f("ix_agent_certificates_revoked_at"), "agent_certificates", ["revoked_at"], unique=False)
    op.create_table(
        "processed_batches",
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("batch_id", sa.String(length=128), nullable=False),
        sa.Column("processed_at", Utc(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("agent_id", "batch_id", name=op.f("pk_processed_batches")),
    )


def downgrade() -> None:
    op.drop_table("processed_batches")
    op.drop_index(op.f("ix_agent_certificates_revoked_at"), table_name="agent_certificates")
    op.drop_index(op.f("ix_agent_certificates_agent_id"), table_name="agent_certificates")
    op.drop_table("agent_certificates")
    op.drop_index(op.f("ix_enrolment_tokens_site_id"), table_name="enrolment_tokens")
    op.drop_table("enrolment_tokens")
