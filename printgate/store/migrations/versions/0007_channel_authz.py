"""agent channel authorisation: enrolment token ids, authorised re-keys

Revision ID: 0007_channel_authz
Revises: 0005_channel

``enrolment_tokens.token_id`` is the non-secret half of a token
(``pgenrol_<id>_<secret>``): attempts naming a known id are throttled per
token, the others per source address, so a guessing device behind a NAT does
not lock out the agents next to it. ``agent_rekey_grants`` holds the one-time
permission an admin gives an agent to renew its certificate for a new key.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import printgate.store.models.base

revision: str = "0007_channel_authz"
down_revision: str | Sequence[str] | None = "0005_channel"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Utc = printgate.store.models.base.UtcDateTime


def upgrade() -> None:
    op.add_column("enrolment_tokens", sa.Column("token_id", sa.String(length=32), nullable=True))
    op.create_index(op.f("ix_enrolment_tokens_token_id"), "enrolment_tokens", ["token_id"], unique=True)
    op.create_table(
        "agent_rekey_grants",
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("granted_by", sa.String(length=320), nullable=False),
        sa.Column("granted_at", Utc(timezone=True), nullable=False),
        sa.Column("expires_at", Utc(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], name=op.f("fk_agent_rekey_grants_agent_id_agents")),
        sa.PrimaryKeyConstraint("agent_id", name=op.f("pk_agent_rekey_grants")),
    )


def downgrade() -> None:
    op.drop_table("agent_rekey_grants")
    op.drop_index(op.f("ix_enrolment_tokens_token_id"), table_name="enrolment_tokens")
    with op.batch_alter_table("enrolment_tokens") as batch:  # SQLite rebuilds the table
        batch.drop_column("token_id")
