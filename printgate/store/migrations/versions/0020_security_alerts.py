"""security alerting: subscriptions per tenant, alerts raised, deliveries, the follower's cursor

Revision ID: 0020_security_alerts
Revises: 0001_core
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import printgate.store.models.base

revision: str = "0020_security_alerts"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = ("security_alerts",)
depends_on: str | Sequence[str] | None = None

Utc = printgate.store.models.base.UtcDateTime


def upgrade() -> None:
    op.create_table(
        "security_subscriptions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("dealer_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=True),
        sa.Column("contact", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=512), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=True),
        sa.Column("categories", sa.String(length=200), nullable=False),
        sa.Column("min_severity", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", Utc(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=True),
        sa.ForeignKeyConstraint(["dealer_id"], ["dealers.id"],
                                name=op.f("fk_security_subscriptions_dealer_id_dealers")),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"],
                                name=op.f("fk_security_subscriptions_customer_id_customers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_security_subscriptions")),
    )
    op.create_index(op.f("ix_security_subscriptions_dealer_id"), "security_subscriptions", ["dealer_id"])
    op.create_index(op.f("ix_security_subscriptions_customer_id"), "security_subscriptions", ["customer_id"])
    op.create_table(
        "security_alerts",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("dealer_id", sa.String(length=64), nullable=True),
        sa.Column("customer_id", sa.String(length=64), nullable=True),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("first_at", Utc(timezone=True), nullable=False),
        sa.Column("last_at", Utc(timezone=True), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", Utc(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_security_alerts")),
    )
    op.create_index(op.f("ix_security_alerts_dealer_id"), "security_alerts", ["dealer_id"])
    op.create_index(op.f("ix_security_alerts_customer_id"), "security_alerts", ["customer_id"])
    op.create_index(op.f("ix_security_alerts_created_at"), "security_alerts", ["created_at"])
    op.create_table(
        "security_alert_deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.String(length=32), nullable=False),
        sa.Column("subscription_id", sa.String(length=32), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=512), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", Utc(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("sent_at", Utc(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["alert_id"], ["security_alerts.id"],
                                name=op.f("fk_security_alert_deliveries_alert_id_security_alerts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_security_alert_deliveries")),
        sa.UniqueConstraint("alert_id", "channel", "target", name=op.f("uq_security_alert_deliveries_alert_id")),
    )
    op.create_index(op.f("ix_security_alert_deliveries_alert_id"), "security_alert_deliveries", ["alert_id"])
    op.create_index(op.f("ix_security_alert_deliveries_status"), "security_alert_deliveries", ["status"])
    op.create_table(
        "security_alert_cursor",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("updated_at", Utc(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_security_alert_cursor")),
    )


def downgrade() -> None:
    op.drop_table("security_alert_cursor")
    op.drop_table("security_alert_deliveries")
    op.drop_table("security_alerts")
    op.drop_table("security_subscriptions")
