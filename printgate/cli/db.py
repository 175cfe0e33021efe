"""`printgate db ...`: schema migrations."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from sqlalchemy.engine import make_url

from printgate.settings import Settings

app = typer.Typer(no_args_is_help=True, help="database commands")


async def _revisions(url: str) -> tuple[str, ...] | None:
    """The schema revisions the database is at; None when it has no printgate schema yet."""
    from sqlalchemy import inspect, text

    from printgate.cli.schema_guard import SCHEMA_MARKER, sqlite_file_missing
    from printgate.store.db import Database

    if sqlite_file_missing(url):
        return None
    db = Database(url)
    try:
        async with db.engine.connect() as conn:
            if not await conn.run_sync(lambda sync: inspect(sync).has_table(SCHEMA_MARKER)):
                return None
            rows = await conn.execute(text("SELECT version_num FROM alembic_version"))  # SCHEMA_MARKER
            return tuple(sorted(str(r[0]) for r in rows))
    finally:
        await db.aclose()


@app.command()
def upgrade(config: Path | None = typer.Option(None, help="TOML settings file")) -> None:
    """Create or upgrade the schema to the newest revision."""
    from printgate.store.db import migrate_sync

    settings = Settings.load(config)
    url = settings.database_url
    shown = make_url(url).render_as_string(hide_password=True)
    before = asyncio.run(_revisions(url))
    migrate_sync(url)
    after = asyncio.run(_revisions(url)) or ()
    if before is None:
        typer.echo(f"created the printgate schema at {shown} ({_revisions_text(after)})")
    elif before != after:
        typer.echo(f"upgraded the schema at {shown}: {len(set(after) - set(before))} migration branch(es) moved "
                   f"({_revisions_text(after)})")
    else:
        typer.echo(f"database at {shown} is up to date ({_revisions_text(after)})")


def _revisions_text(revisions: tuple[str, ...]) -> str:
    """One short phrase for the schema's revisions: the migrations form branches (one per area), so a
    database is at several heads at once; the newest one tells the version."""
    if len(revisions) <= 1:
        return f"revision {revisions[0] if revisions else '-'}"
    return f"newest revision {max(revisions)}, {len(revisions)} branch heads"
