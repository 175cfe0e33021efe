"""Open the database for a command only when it holds printgate's schema.

A command run without ``--config`` falls back to the default URL (``./var/printgate.db``);
opening that with SQLAlchemy would create an empty file and then fail with a traceback
(``no such table``). Commands refuse instead, with one line that says what to do, and
never create the file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from printgate.settings import Settings
    from printgate.store.db import Database

SCHEMA_MARKER = "alembic_version"


def missing_schema_message(url: str, config: Path | None = None, *, url_option: bool = False) -> str:
    """What to do about a database without the schema: with ``--config`` given, upgrade that one;
    with ``--database-url`` given (``url_option``), upgrade that URL."""
    shown = make_url(url).render_as_string(hide_password=True)
    if url_option:
        return (f"no printgate schema at {shown} yet: run `PRINTGATE_DATABASE_URL='{shown}' printgate db upgrade` "
                "first (it creates the schema)")
    if config is not None:
        return (f"no printgate schema at {shown} yet: run `printgate db upgrade --config {config}` first "
                "(it creates the schema)")
    demo = Path("var/demo/printgate.toml")
    if demo.is_file():  # `make demo` ran here: its database is what the operator most likely wants
        return (f"no printgate schema at {shown}: to reach the demo, pass --config {demo}; otherwise pass "
                "--config <file> or run `printgate db upgrade`")
    return f"no printgate schema at {shown}: pass --config <file> or run `printgate db upgrade`"


def _refuse(url: str, config: Path | None = None, *, url_option: bool = False) -> typer.Exit:
    typer.echo(f"error: {missing_schema_message(url, config, url_option=url_option)}", err=True)
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
async def schema_database(url: str, config: Path | None = None, *,
                          url_option: bool = False) -> AsyncIterator[Database]:
    """``async with schema_database(url) as db``: a Database, or exit 2 with a one-line message
    (naming ``config``, the settings file the command was given, in the upgrade to run; or the
    URL itself when the command was given ``--database-url``: ``url_option``)."""
    from printgate.store.db import Database

    if sqlite_file_missing(url):
        raise _refuse(url, config, url_option=url_option)
    async with Database(url) as db:
        async with db.engine.connect() as conn:
            present = await conn.run_sync(lambda sync: inspect(sync).has_table(SCHEMA_MARKER))
        if not present:
            raise _refuse(url, config, url_option=url_option)
        yield db


def command_settings(config: Path | None) -> Settings:
    """The settings of a command given ``--config`` (or none): exit 2 with the settings' own
    message when the file or the environment is wrong."""
    from printgate.errors import PrintgateError
    from printgate.settings import Settings

    try:
        return Settings.load(config)
    except PrintgateError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc


def command_database(config: Path | None, database_url: str | None = None) -> AbstractAsyncContextManager[Database]:
    """The one check every command that needs the schema makes: ``async with
    command_database(config, database_url) as db``. The database of ``--database-url`` or of
    the settings (``--config``, environment); without the schema, exit 2 naming the upgrade to
    run for exactly that database (``printgate db upgrade --config <the file given>``)."""
    if database_url:
        return schema_database(database_url, config, url_option=True)
    return schema_database(command_settings(config).database_url, config)
