"""enrolment retry: the key an enrolment token was redeemed for

Revision ID: 0012_enrolment_retry
Revises: 0007_channel_authz

``enrolment_tokens.used_key_sha256`` is the SHA-256 of the SubjectPublicKeyInfo the
token was redeemed for. An agent whose answer was lost (killed, timed out) retries
with the same token and the same key while the token is still valid and gets its
certificate again for the same agent id; any other key is refused.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_enrolment_retry"
down_revision: str | Sequence[str] | None = "0007_channel_authz"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("enrolment_tokens", sa.Column("used_key_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("enrolment_tokens") as batch:
        batch.drop_column("used_key_sha256")
