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
    from policy import default_ruleset, evaluate_dwa_open, load_policy
    from printgate.store import approvals, rule_sets, sessions
    from printgate.store.db import Database
    from printgate.store.devices import get_device
    from printgate.store.tenants import (
        get_agent,
        get_user,
        get_user_row_by_email,
        tenant_of_site,
        user_from_row,
    )

    now = datetime.now(UTC)
    async with Database(settings.database_url) as db, db.session() as s:
        user = await get_user(s, user_ref)
        if user is None:
            row = await get_user_row_by_email(s, user_ref)
            user = user_from_row(row) if row else None
        if user is None:
            return False, f"no user {user_ref!r} (give an id or an e-mail)"
        device = await get_device(s, device_id)
        found = await tenant_of_site(s, device.site_id) if device else None
        if device is None or found is None:
            return False, f"no device {device_id!r}"
        customer, site = found
        agent = await get_agent(s, device.agent_id)
        body = await rule_sets.load_ruleset(s, customer.dealer_id)
        compiled = load_policy(body) if body else load_policy(default_ruleset(customer.dealer_id))
        decision = evaluate_dwa_open(
            compiled, user=user, device=device, dealer_id=customer.dealer_id, customer_id=customer.id,
            site_id=site.id, remote_access=customer.remote_access,
            agent_online=bool(agent and agent.online), agent_enrolled=bool(agent and not agent.revoked),
            source_ip=source_ip, mfa_age_seconds=mfa_age, now=now,
            user_live_sessions=await sessions.count_live_dwa_sessions(s, user_id=user.id),
            device_live_sessions=await sessions.count_live_dwa_sessions(s, device_id=device.id),
            approved_until=await approvals.active_approval_until(s, user.id, device.id, now),
        )
    header = (f"{user.email} -> {device.name or device.id} ({customer.name}), policy v{compiled.version}, "
              f"source {source_ip}, MFA age {'none' if mfa_age is None else f'{mfa_age:.0f}s'}")
    return decision.allow, f"{header}\n{decision.explain()}"


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
