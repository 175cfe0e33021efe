"""device identity: merge duplicate devices; model changes recorded; per-tenant supply thresholds

Until now a printer without a serial (and without a MAC) got a new device row
at every inventory. This revision merges such duplicates: rows of one site
with the same serial, else the same MAC, else (neither known) the same
address and sysObjectID are one device. The oldest row keeps its id (sessions,
approvals and audit records name it); readings, sessions, approvals and
alerts of the others move to it; the current state and supplies of the most
recently seen row are kept. Audit records are never rewritten.

Revision ID: 0010_device_identity
Revises: 0006_fleet
"""

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

import printgate.store.models.base

revision: str = "0010_device_identity"
down_revision: str | Sequence[str] | None = "0006_fleet"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = ("0004_identity",)  # dwa_approvals names devices

UTC_DT = printgate.store.models.base.UtcDateTime
_EPOCH = datetime(1970, 1, 1)


def _naive(t: datetime | str | None) -> datetime:
    """A stored time, comparable across backends (SQLite hands back text)."""
    if t is None:
        return _EPOCH
    return (datetime.fromisoformat(t) if isinstance(t, str) else t).replace(tzinfo=None)


def duplicate_groups(rows: Sequence[sa.Row[tuple[str, ...]]]) -> list[list[sa.Row[tuple[str, ...]]]]:
    """Rows that are one device (union of: same site+serial, site+MAC, site+address+sysObjectID w/o both)."""
    parent = {r.id: r.id for r in rows}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    first_with: dict[tuple[str, ...], str] = {}
    for r in rows:
        keys = []
        if r.serial:
            keys.append((r.site_id, "serial", r.serial.strip()))
        if r.mac:
            keys.append((r.site_id, "mac", r.mac.lower().replace("-", ":")))
        if not r.serial and not r.mac and r.sys_object_id:
            keys.append((r.site_id, "address", r.ip, r.sys_object_id))
        for key in keys:
            if key in first_with:
                parent[find(r.id)] = find(first_with[key])
            else:
                first_with[key] = r.id
    groups: dict[str, list[sa.Row[tuple[str, ...]]]] = defaultdict(list)
    for r in rows:
        groups[find(r.id)].append(r)
    return [g for g in groups.values() if len(g) > 1]


def _merge_duplicates() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text(
        "SELECT id, site_id, agent_id, ip, serial, mac, sys_object_id, first_seen, last_seen FROM devices"
    )).all()
    for group in duplicate_groups(rows):
        keeper = min(group, key=lambda r: (_naive(r.first_seen), r.id))
        freshest = max(group, key=lambda r: (_naive(r.last_seen), r.id))
        others = [r.id for r in group if r.id != keeper.id]
        moved = {"keep": keeper.id, "others": others}
        for table in ("readings", "dwa_sessions", "dwa_approvals", "device_alerts"):
            bind.execute(sa.text(f"UPDATE {table} SET device_id = :keep WHERE device_id IN :others")
                         .bindparams(sa.bindparam("others", expanding=True)), moved)
        if freshest.id != keeper.id:  # the current state is the freshest row's
            for table in ("device_states", "device_supplies"):
                has = bind.execute(sa.text(f"SELECT COUNT(*) FROM {table} WHERE device_id = :id"),
                                   {"id": freshest.id}).scalar_one()
                if has:
                    bind.execute(sa.text(f"DELETE FROM {table} WHERE device_id = :keep"), moved)
                    bind.execute(sa.text(f"UPDATE {table} SET device_id = :keep WHERE device_id = :id"),
                                 {"keep": keeper.id, "id": freshest.id})
            bind.execute(sa.text("UPDATE devices SET ip = :ip, agent_id = :agent, last_seen = :seen WHERE id = :keep"),
                         {"ip": freshest.ip, "agent": freshest.agent_id, "seen": freshest.last_seen,
                          "keep": keeper.id})
        for table in ("device_states", "device_supplies"):
            bind.execute(sa.text(f"DELETE FROM {table} WHERE device_id IN :others")
                         .bindparams(sa.bindparam("others", expanding=True)), moved)
        bind.execute(sa.text("DELETE FROM devices WHERE id IN :others")
                     .bindparams(sa.bindparam("others", expanding=True)), moved)


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("previous_model", sa.String(length=256), nullable=True))
        batch.add_column(sa.Column("model_changed_at", UTC_DT(timezone=True), nullable=True))
    op.create_table(
        "supply_thresholds",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("warning_percent", sa.Integer(), nullable=False),
        sa.Column("critical_percent", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTC_DT(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=320), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_supply_thresholds")),
    )
    _merge_duplicates()


def downgrade() -> None:
    op.drop_table("supply_thresholds")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("model_changed_at")
        batch.drop_column("previous_model")
