"""devices.ews_probe: how each web port the agent tried failed, for a printer without a web page

Revision ID: 0015_device_ews_probe
Revises: 0001_core

Filled from the agent's inventory (``DiscoveredDevice.ews_probe``) when it reports ``ews_port``
0; the policy reason ``device.no_web_page`` and the devices page name it. Empty for every
existing device.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_device_ews_probe"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("ews_probe", sa.String(1000), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("ews_probe")
