"""readings history partitioned by month on PostgreSQL; history retention per dealer

On PostgreSQL the history table ``readings`` becomes ``PARTITION BY RANGE (taken_at)``: one
partition per calendar month (UTC) named ``readings_yYYYYmMM``, plus ``readings_default`` that
takes a reading of any month without its partition yet (nothing is ever refused for a missing
partition; the cloud's ``readings-history`` task creates the month's partition and moves such
rows into it). Existing rows are moved into the monthly partitions; the partitions of the
current month and the next ``AHEAD`` months exist from the start. A partitioned table's
primary key must hold the partition key, so it is ``(id, taken_at)`` there (a reading re-sent
keeps its id and its time, so it still collides). SQLite keeps the plain table.

``readings_retention`` holds each dealer's days of history (none: ``DEFAULT_RETENTION_DAYS``
of ``printgate/store/readings_history.py``).

down_revision 0010_device_identity: the revision that last changed ``readings`` (device ids
merged) and added the dealer's other fleet setting (``supply_thresholds``).

Revision ID: 0017_readings_partitions
Revises: 0010_device_identity
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import printgate.store.models.base

revision: str = "0017_readings_partitions"
down_revision: str | Sequence[str] | None = "0010_device_identity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DT = printgate.store.models.base.UtcDateTime
AHEAD = 2  # months after the current one whose partitions exist from the start
_INDEXES = {"ix_readings_agent_id": "agent_id", "ix_readings_ip": "ip", "ix_readings_serial": "serial",
            "ix_readings_taken_at": "taken_at", "ix_readings_device_taken": "device_id, taken_at"}


def _month(year: int, month: int) -> datetime:
    return datetime(year + (month - 1) // 12, (month - 1) % 12 + 1, 1, tzinfo=UTC)


def _partition_sql(start: datetime) -> str:
    end = _month(start.year, start.month + 1)
    return (f"CREATE TABLE IF NOT EXISTS readings_y{start:%Y}m{start:%m} PARTITION OF readings "
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')")


def _partition_readings() -> None:
    bind = op.get_bind()
    op.execute("ALTER TABLE readings RENAME TO readings_unpartitioned")
    op.execute("ALTER TABLE readings_unpartitioned RENAME CONSTRAINT pk_readings TO pk_readings_unpartitioned")
    for name in _INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    op.execute(
        "CREATE TABLE readings (id VARCHAR(64) NOT NULL, agent_id VARCHAR(64) NOT NULL, batch_id VARCHAR(64) NOT NULL, "
        "ip VARCHAR(64) NOT NULL, serial VARCHAR(128), taken_at TIMESTAMP WITH TIME ZONE NOT NULL, "
        "kinds VARCHAR(64) NOT NULL, body JSON NOT NULL, device_id VARCHAR(64), "
        "CONSTRAINT pk_readings PRIMARY KEY (id, taken_at)) PARTITION BY RANGE (taken_at)")
    for name, cols in _INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON readings ({cols})")
    op.execute("CREATE TABLE readings_default PARTITION OF readings DEFAULT")
    now = datetime.now(UTC)
    months = {_month(now.year, now.month + k) for k in range(AHEAD + 1)}
    for (month,) in bind.execute(sa.text(
            "SELECT DISTINCT date_trunc('month', taken_at AT TIME ZONE 'UTC') FROM readings_unpartitioned")):
        months.add(_month(month.year, month.month))
    for start in sorted(months):
        op.execute(_partition_sql(start))
    op.execute("INSERT INTO readings (id, agent_id, batch_id, ip, serial, taken_at, kinds, body, device_id) "
               "SELECT id, agent_id, batch_id, ip, serial, taken_at, kinds, body, device_id FROM readings_unpartitioned")
    op.execute("DROP TABLE readings_unpartitioned")


def _unpartition_readings() -> None:
    op.execute("ALTER TABLE readings RENAME TO readings_partitioned")
    op.execute("ALTER TABLE readings_partitioned RENAME CONSTRAINT pk_readings TO pk_readings_partitioned")
    for name in _INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    op.execute(
        "CREATE TABLE readings (id VARCHAR(64) NOT NULL, agent_id VARCHAR(64) NOT NULL, batch_id VARCHAR(64) NOT NULL, "
        "ip VARCHAR(64) NOT NULL, serial VARCHAR(128), taken_at TIMESTAMP WITH TIME ZONE NOT NULL, "
        "kinds VARCHAR(64) NOT NULL, body JSON NOT NULL, device_id VARCHAR(64), "
        "CONSTRAINT pk_readings PRIMARY KEY (id))")
    op.execute("INSERT INTO readings (id, agent_id, batch_id, ip, serial, taken_at, kinds, body, device_id) "
               "SELECT id, agent_id, batch_id, ip, serial, taken_at, kinds, body, device_id FROM readings_partitioned "
               "ON CONFLICT (id) DO NOTHING")
    op.execute("DROP TABLE readings_partitioned")  # drops every partition with it
    for name, cols in _INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON readings ({cols})")


def upgrade() -> None:
    op.create_table(
        "readings_retention",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTC_DT(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=320), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_readings_retention")),
    )
    if op.get_bind().dialect.name == "postgresql":
        _partition_readings()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _unpartition_readings()
    op.drop_table("readings_retention")
