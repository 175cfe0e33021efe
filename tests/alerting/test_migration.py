"""Migration 0020 creates exactly the security-alert models (types, keys, indexes), on both backends."""

from __future__ import annotations

from printgate.store.db import Database

OURS = {"security_subscriptions", "security_alerts", "security_alert_deliveries", "security_alert_cursor"}


def _tables(d: object) -> set[str]:
    found: set[str] = set()
    for part in d if isinstance(d, (list, tuple)) else (d,):
        name = getattr(part, "name", None) or getattr(getattr(part, "table", None), "name", None)
        if isinstance(part, str):
            found.add(part)
        elif isinstance(name, str):
            found.add(name)
        elif isinstance(part, (list, tuple)):
            found |= _tables(part)
    return found


async def test_migration_0020_creates_exactly_the_security_alert_models(db: Database) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from printgate.store.models import Base

    assert OURS <= set(Base.metadata.tables)

    def diff(conn) -> list:  # type: ignore[no-untyped-def,type-arg]
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return [d for d in compare_metadata(ctx, Base.metadata) if OURS & _tables(d)]

    async with db.engine.connect() as conn:
        assert await conn.run_sync(diff) == []
