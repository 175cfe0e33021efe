"""vault: wrapped data keys per customer, sealed device credentials (versioned), the customer's
refusal of stored credentials, break-glass reveals (each bound to a customer approval)

Revision ID: 0013_vault
Revises: 0001_core
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import printgate.store.models.base

revision: str = "0013_vault"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = ("vault",)
depends_on: str | Sequence[str] | None = "0004_identity"  # credential_reveals -> dwa_approvals

Utc = printgate.store.models.base.UtcDateTime


def upgrade() -> None:
    op.create_table(
        "vault_data_keys",
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("kms_key_id", sa.String(length=128), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", Utc(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"],
                                name=op.f("fk_vault_data_keys_customer_id_customers")),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_vault_data_keys")),
    )
    op.create_table(
        "device_credentials",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=256), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("account", sa.String(length=128), nullable=False),
        sa.Column("profile", sa.String(length=64), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", Utc(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.Column("erased_at", Utc(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"],
                                name=op.f("fk_device_credentials_customer_id_customers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_credentials")),
        sa.UniqueConstraint("customer_id", "scope", "target", "version",
                            name=op.f("uq_device_credentials_customer_id")),
    )
    op.create_index(op.f("ix_device_credentials_customer_id"), "device_credentials", ["customer_id"])
    op.create_table(
        "credential_use_settings",
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("forbidden", sa.Boolean(), nullable=False),
        sa.Column("changed_at", Utc(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"],
                                name=op.f("fk_credential_use_settings_customer_id_customers")),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_credential_use_settings")),
    )
    op.create_table(
        "credential_reveals",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("approval_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("requested_at", Utc(timezone=True), nullable=False),
        sa.Column("revealed_at", Utc(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["approval_id"], ["dwa_approvals.id"],
                                name=op.f("fk_credential_reveals_approval_id_dwa_approvals")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credential_reveals")),
    )


def downgrade() -> None:
    op.drop_table("credential_reveals")
    op.drop_table("credential_use_settings")
    op.drop_index(op.f("ix_device_credentials_customer_id"), table_name="device_credentials")
    op.drop_table("device_credentials")
    op.drop_table("vault_data_keys")
