"""`printgate fleet ...`: the fleet's settings that live in the cloud's database."""

from __future__ import annotations

import asyncio
import getpass
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, help="fleet monitoring commands")


@app.command()
def retention(
    dealer: Annotated[str, typer.Option(help="the dealer: its id or its name")],
    days: Annotated[int | None, typer.Option(help="days of readings history to keep (7..3650); "
                                                  "without it: show the dealer's retention")] = None,
    by: Annotated[str | None, typer.Option(help="who sets it (recorded in the audit trail; default: cli:<user>)")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML settings file (the cloud's database)")] = None,
) -> None:
    """Show or set how long a dealer's readings history is kept (audited; the cloud's
    readings-history task deletes older readings in batches, and on PostgreSQL drops a month's
    partition once every dealer's retention is past it)."""
    from audit.log import AuditLog
    from fleet.retention import set_dealer_retention
    from printgate.cli.schema_guard import command_database
    from printgate.cli.tenant_refs import dealer_id_of
    from printgate.errors import PrintgateError
    from printgate.store import readings_history as history

    async def run() -> str:
        async with command_database(config) as db:
            async with db.session() as s:
                dealer_id = await dealer_id_of(s, dealer)
            if days is None:
                async with db.session() as s:
                    kept, own = await history.retention_of(s, dealer_id)
                return f"dealer {dealer_id} keeps {kept} days of readings history ({'set' if own else 'the default'})"
            before = await set_dealer_retention(db, AuditLog(db, None), dealer_id, days, by=by or f"cli:{getpass.getuser()}")
            was = f"{before} days" if before is not None else f"the default, {history.DEFAULT_RETENTION_DAYS} days"
            return f"dealer {dealer_id} now keeps {days} days of readings history (was {was})"

    try:
        typer.echo(asyncio.run(run()))
    except PrintgateError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc
