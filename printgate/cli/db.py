"""`printgate db ...`: schema migrations."""

from __future__ import annotations

from pathlib import Path

import typer

from printgate.settings import Settings

app = typer.Typer(no_args_is_help=True, help="database commands")


@app.command()
def upgrade(config: Path | None = typer.Option(None, help="TOML settings file")) -> None:
    """Create or upgrade the schema to the newest revision."""
    from printgate.store.db import migrate_sync

    settings = Settings.load(config)
    migrate_sync(settings.database_url)
    typer.echo(f"database at {settings.database_url} is up to date")
