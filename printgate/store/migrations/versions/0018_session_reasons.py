"""session reasons and per-site access modes (issue 20): dwa_sessions.reason (the alert, ticket or
text a session was opened for), sites.remote_access (NULL: the customer's mode) and
sites.alert_min_severity (the threshold of the alert_auto mode)

Revision ID: 0018_session_reasons
Revises: 0001_core
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_session_reasons"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dwa_sessions") as batch:
        batch.add_column(sa.Column("reason", sa.JSON(), nullable=True))
    with op.batch_alter_table("sites") as batch:
        batch.add_column(sa.Column("remote_access", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("alert_min_severity", sa.String(length=16), nullable=False,
                                   server_default="critical"))


def downgrade() -> None:
    with op.batch_alter_table("sites") as batch:
        batch.drop_column("alert_min_severity")
        batch.drop_column("remote_access")
    with op.batch_alter_table("dwa_sessions") as batch:
        batch.drop_column("reason")
