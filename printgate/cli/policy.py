"""`printgate policy ...` commands."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import typer

from printgate.settings import Settings

app = typer.Typer(no_args_is_help=True, help="policy commands")


async def _explain(settings: Settings, user_ref: str, device_id: str, source_ip: str,
                   mfa_age: float | None) -> tuple[bool, str]:
    from portal.policy_preview import explain_open
    from printgate.store.db import Database
    from printgate.store.tenants import get_user, get_user_row_by_email, user_from_row

    async with Database(settings.database_url) as db, db.session() as s:
        user = await get_user(s, user_ref)
        if user is None:
            row = await get_user_row_by_email(s, user_ref)
            user = user_from_row(row) if row else None
        if user is None:
            return False, f"no user {user_ref!r} (give an id or an e-mail)"
        explained = await explain_open(s, user, device_id, source_ip=source_ip, mfa_age=mfa_age,
                                       now=datetime.now(UTC))
    if explained is None:
        return False, f"no device {device_id!r}"
    return explained.decision.allow, explained.text


@app.command()
def explain(
    user: str = typer.Option(..., help="user id or e-mail"),
    device: str = typer.Option(..., help="device id"),
    source_ip: str = typer.Option("127.0.0.1", help="address the request would come from"),
    mfa_age: float | None = typer.Option(60.0, help="seconds since the second factor (omit: 60)"),
    no_mfa: bool = typer.Option(False, help="as if no second factor was verified"),
    config: Path | None = typer.Option(None, help="TOML settings file"),
) -> None:
    """Print the decision for USER opening DEVICE's web page, with every reason."""
    settings = Settings.load(config)
    allow, text = asyncio.run(_explain(settings, user, device, source_ip, None if no_mfa else mfa_age))
    typer.echo(text)
    raise typer.Exit(0 if allow else 1)
