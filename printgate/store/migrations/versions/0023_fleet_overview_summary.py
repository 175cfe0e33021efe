"""fleet overview: each device's open alerts and lowest consumable kept in device_states

The overview of a dealer's 20,000 printers counted open alerts and low supplies by grouping
``device_alerts`` and ``device_supplies`` on every page view (~150 ms of 400 on SQLite). Now
``device_states`` carries per device

- ``open_alerts``: open alerts (``cleared_at`` NULL),
- ``alert_severity``: 3 if one of them is critical, 2 if any is open, else 0,
- ``lowest_percent``: the lowest known percent of a consumable (waste containers never: type
  ``waste...`` or a description with ``waste``), NULL when none is known; the dealer's warning
  threshold is applied when reading, so changing it needs no rewrite,

kept by database triggers on ``device_alerts`` and ``device_supplies`` (whoever writes them:
ingest with ``COPY`` or ``INSERT``, a merge, a delete), in the writer's transaction: on
PostgreSQL one statement-level trigger per statement (transition tables: one set-based update
per batch), on SQLite row triggers. Ingest writes ``device_states`` before supplies and alerts.

On PostgreSQL the text search of the overview uses a trigram index (``pg_trgm``) when the
extension can be created (it ships with PostgreSQL; ``CREATE EXTENSION`` needs a superuser or
a trusted-extension grant); without it the search scans, as before.

down_revision 0010_device_identity: the revision that last changed ``device_alerts`` (merged
device ids) and the fleet tables.

Revision ID: 0023_fleet_overview_summary
Revises: 0010_device_identity
"""
# ruff: noqa: S608  (DDL assembled from this module's constant fragments; no outside value)

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023_fleet_overview_summary"
down_revision: str | Sequence[str] | None = "0010_device_identity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WASTE = "(lower({t}type) LIKE 'waste%' OR lower({t}description) LIKE '%waste%')"
_LOWEST = ("(SELECT min(s.percent) FROM device_supplies s WHERE s.device_id = {d} AND s.percent IS NOT NULL "
           "AND NOT " + _WASTE.format(t="s.") + ")")
_OPEN = "(SELECT count(*) FROM device_alerts a WHERE a.device_id = {d} AND a.cleared_at IS NULL)"
_SEVERITY = ("coalesce((SELECT max(CASE WHEN a.severity = 'critical' THEN 3 ELSE 2 END) FROM device_alerts a "
             "WHERE a.device_id = {d} AND a.cleared_at IS NULL), 0)")
_CHANGED = {  # the columns the summary depends on (SQLite: an update of others fires nothing)
    "device_alerts": "OLD.cleared_at IS NOT NEW.cleared_at OR OLD.severity IS NOT NEW.severity "
                     "OR OLD.device_id IS NOT NEW.device_id",
    "device_supplies": "OLD.percent IS NOT NEW.percent OR OLD.type IS NOT NEW.type "
                       "OR OLD.description IS NOT NEW.description OR OLD.device_id IS NOT NEW.device_id",
}
SEARCH_INDEX = "ix_devices_search_trgm"
SEARCH_EXPR = ("lower(coalesce(name, '') || ' ' || ip || ' ' || coalesce(model, '') || ' ' || "
               "coalesce(serial, ''))")


def _sqlite_triggers() -> None:
    for table, summary in (("device_alerts", "open_alerts = {o}, alert_severity = {s}"),
                           ("device_supplies", "lowest_percent = {l}")):
        for event, row in (("INSERT", "NEW"), ("DELETE", "OLD"), ("UPDATE", "NEW")):
            d = f"{row}.device_id"
            body = summary.format(o=_OPEN.format(d=d), s=_SEVERITY.format(d=d), l=_LOWEST.format(d=d))
            extra = ""
            if event == "UPDATE":  # a row moved to another device: the old one's summary too
                old = summary.format(o=_OPEN.format(d="OLD.device_id"), s=_SEVERITY.format(d="OLD.device_id"),
                                     l=_LOWEST.format(d="OLD.device_id"))
                extra = f" UPDATE device_states SET {old} WHERE device_id = OLD.device_id AND OLD.device_id <> NEW.device_id;"
            when = f" WHEN {_CHANGED[table]}" if event == "UPDATE" else ""  # not for last_seen_at
            # a device with alerts or supplies but no state yet (never reported) gets its state row
            state = "" if event == "DELETE" else (
                f"INSERT INTO device_states (device_id, error_state) VALUES ({d}, '[]') ON CONFLICT DO NOTHING; ")
            op.execute(f"CREATE TRIGGER {table}_summary_{event.lower()} AFTER {event} ON {table} FOR EACH ROW{when} "
                       f"BEGIN {state}UPDATE device_states SET {body} WHERE device_id = {d};{extra} END")


# a device with alerts or supplies but no state yet (never reported) gets its state row first
_PG_STATE = ("IF TG_OP <> 'DELETE' THEN INSERT INTO device_states (device_id, error_state) "
             "SELECT c.device_id, '[]'::json FROM (SELECT DISTINCT device_id FROM changed) c ON CONFLICT DO NOTHING; END IF; ")


def _pg_triggers() -> None:
    op.execute(
        "CREATE FUNCTION device_alerts_summary() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"{_PG_STATE}UPDATE device_states st SET open_alerts = x.n, alert_severity = x.sev FROM ("
        f"SELECT c.device_id, {_OPEN.format(d='c.device_id')} AS n, {_SEVERITY.format(d='c.device_id')} AS sev "
        "FROM (SELECT DISTINCT device_id FROM changed) c) x "
        "WHERE st.device_id = x.device_id AND (st.open_alerts, st.alert_severity) IS DISTINCT FROM (x.n, x.sev); "
        "RETURN NULL; END $$")
    op.execute(
        "CREATE FUNCTION device_supplies_summary() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"{_PG_STATE}UPDATE device_states st SET lowest_percent = x.low FROM ("
        f"SELECT c.device_id, {_LOWEST.format(d='c.device_id')} AS low "
        "FROM (SELECT DISTINCT device_id FROM changed) c) x "
        "WHERE st.device_id = x.device_id AND st.lowest_percent IS DISTINCT FROM x.low; "
        "RETURN NULL; END $$")
    for table in ("device_alerts", "device_supplies"):
        for event, ref in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")):
            op.execute(f"CREATE TRIGGER {table}_summary_{event.lower()} AFTER {event} ON {table} "
                       f"REFERENCING {ref} TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION {table}_summary()")
    # no trigger for an UPDATE that moves a row to another device: nothing does (merging duplicate
    # devices happened in 0010, before); it would run the summary twice for every ingest update
    bind = op.get_bind()
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError:
        return  # no right to create it: the search scans
    op.execute(f"CREATE INDEX {SEARCH_INDEX} ON devices USING gin (({SEARCH_EXPR}) gin_trgm_ops)")


def upgrade() -> None:
    with op.batch_alter_table("device_states") as batch:
        batch.add_column(sa.Column("open_alerts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("alert_severity", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("lowest_percent", sa.Float(), nullable=True))
    empty = "'[]'::json" if op.get_bind().dialect.name == "postgresql" else "'[]'"
    for table in ("device_alerts", "device_supplies"):  # states for devices that have none yet
        op.execute(f"INSERT INTO device_states (device_id, error_state) SELECT t.device_id, {empty} FROM "
                   f"(SELECT DISTINCT device_id FROM {table}) t "
                   "WHERE NOT EXISTS (SELECT 1 FROM device_states s WHERE s.device_id = t.device_id)")
    d = "device_states.device_id"
    op.execute(f"UPDATE device_states SET open_alerts = {_OPEN.format(d=d)}, alert_severity = {_SEVERITY.format(d=d)}, "
               f"lowest_percent = {_LOWEST.format(d=d)}")
    if op.get_bind().dialect.name == "postgresql":
        _pg_triggers()
    else:
        _sqlite_triggers()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {SEARCH_INDEX}")
        for table in ("device_alerts", "device_supplies"):
            for event in ("insert", "update", "delete", "moved"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_summary_{event} ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS {table}_summary()")
    else:
        for table in ("device_alerts", "device_supplies"):
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_summary_{event}")
    with op.batch_alter_table("device_states") as batch:
        batch.drop_column("lowest_percent")
        batch.drop_column("alert_severity")
        batch.drop_column("open_alerts")
