"""Open the database for a command only when it holds printgate's schema.

A command run without ``--config`` falls back to the default URL (``./var/printgate.db``);
opening that with SQLAlchemy would create an empty file and then fail with a traceback
(``no such table``). Commands refuse instead, with one line that says what to do, and
never create the file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from printgate.store.db import Database

SCHEMA_MARKER = "alembic_version"


def missing_schema_message(url: str, config: Path | None = None) -> str:
    """What to do about a database without the schema: with ``--config`` given, upgrade that one."""
    shown = make_url(url).render_as_string(hide_password=True)
    if config is not None:
        return (f"no printgate schema at {shown} yet: run `printgate db upgrade --config {config}` first "
                "(it creates the schema)")
    return f"no printgate schema at {shown}: pass --config <file> or run `printgate db upgrade`"


def _refuse(url: str, config: Path | None = None) -> typer.Exit:
    typer.echo(f"error: {missing_schema_message(url, config)}", err=True)
    return typer.Exit(2)


def sqlite_file_missing(url: str) -> bool:
    """True when the URL names an SQLite file that does not exist (opening it would create it)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return False
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return False
    return not Path(database).is_file()


@asynccontextmanager
async def schema_database(url: str, config: Path | None = None) -> AsyncIterator[Database]:
    """``async with schema_database(url) as db``: a Database, or exit 2 with a one-line message
    (naming ``config``, the settings file the command was given, in the upgrade to run)."""
    from printgate.store.db import Database

    if sqlite_file_missing(url):
        raise _refuse(url, config)
    async with Database(url) as db:
        async with db.engine.connect() as conn:
            present = await conn.run_sync(lambda sync: inspect(sync).has_table(SCHEMA_MARKER))
        if not present:
            raise _refuse(url, config)
        yield db
