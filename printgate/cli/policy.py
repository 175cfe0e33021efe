"""`printgate policy ...` commands."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.cli.schema_guard import command_settings
from printgate.domain import ReasonKind, SessionReason, User
from printgate.errors import SessionReasonInvalid
from printgate.settings import Settings

app = typer.Typer(no_args_is_help=True, help="policy commands")


async def _explain(settings: Settings, user_ref: str, device_id: str, source_ip: str,
                   mfa_age: float | None, reason: SessionReason | None = None, *,
                   config: Path | None = None) -> tuple[bool, str]:
    from portal.policy_preview import explain_open
    from printgate.cli.schema_guard import schema_database
    from printgate.store.tenants import get_user
    from printgate.store.users import get_user_by_email

    async with schema_database(settings.database_url, config) as db, db.session() as s:
        user = await get_user(s, user_ref)
        if user is None:
            user = await get_user_by_email(s, user_ref)
        if user is None:
            return False, f"no user {user_ref!r} (give an id or an e-mail)"
        found, problem = await _resolve_device(s, device_id)
        if found is None:
            return False, problem
        device_id = found
        explained = await explain_open(s, user, device_id, source_ip=source_ip, mfa_age=mfa_age,
                                       now=datetime.now(UTC), reason=reason)
        if explained is None:
            return False, f"no device {device_id!r}"
        credentials = await _explain_credentials(s, user, device_id)
    return explained.decision.allow, f"{explained.text}\n{credentials}"


async def _resolve_device(s: AsyncSession, ref: str) -> tuple[str | None, str]:
    """``(id, "")`` of the device ``ref`` names: its id, or its IP address, name or model (as the
    portal shows it) when exactly one device has it; otherwise ``(None, message)`` (with the candidates)."""
    from printgate.store.devices import devices_named, display_name, get_device

    if await get_device(s, ref) is not None:
        return ref, ""
    wanted = ref.strip().lower()
    matches = [d for d in await devices_named(s, ref)
               if wanted in (d.ip, d.name.lower(), (d.identity.sys_name or "").lower(),
                             display_name(d.identity, d.ip).lower())]
    if len(matches) == 1:
        return matches[0].id, ""
    if not matches:
        return None, (f"no device {ref!r}: give the device's id, its IP address or its name as the portal's Fleet "
                "page shows it (the id is the last part of the device's page address, /fleet/<id>)")
    shown = "; ".join(f"{d.id} ({display_name(d.identity, d.ip)} at {d.ip}, site {d.site_id})" for d in matches[:10])
    more = f" and {len(matches) - 10} more" if len(matches) > 10 else ""
    return None, f"{len(matches)} devices match {ref!r}: give the id of one: {shown}{more}"


async def _explain_credentials(s: AsyncSession, user: User, device_id: str) -> str:
    """The second decision: would the proxy sign this user in to the device with a stored credential?"""
    from policy import default_ruleset, load_policy
    from policy.credentials import evaluate_credential_use
    from printgate.store import device_credentials, rule_sets
    from printgate.store.devices import get_device
    from printgate.store.tenants import tenant_of_site

    device = await get_device(s, device_id)
    found = await tenant_of_site(s, device.site_id) if device else None
    if device is None or found is None:
        return ""
    customer, _site = found
    body = await rule_sets.load_ruleset(s, customer.dealer_id)
    compiled = load_policy(body) if body else load_policy(default_ruleset(customer.dealer_id))
    stored = await device_credentials.resolved(s, customer.id, device.id, device.identity.model)
    decision = evaluate_credential_use(
        compiled, user=user, dealer_id=customer.dealer_id, customer_id=customer.id, customer_name=customer.name,
        customer_forbids=await device_credentials.credentials_forbidden(s, customer.id), stored=stored is not None,
    )
    which = f" ({stored.scope.value} credential v{stored.version}, account {stored.account})" if stored else ""
    return f"Use stored device credentials{which}:\n{decision.explain()}"


@app.command()
def explain(
    user: str = typer.Option(..., help="user id or e-mail"),
    device: str = typer.Option(..., help="device id, or its IP address or name when only one device has it"),
    source_ip: str = typer.Option("127.0.0.1", help="address the request would come from"),
    mfa_age: float | None = typer.Option(60.0, help="seconds since the second factor (omit: 60)"),
    no_mfa: bool = typer.Option(False, help="as if no second factor was verified"),
    alert: int | None = typer.Option(None, help="as if opened from this alert of the device (device_alerts id)"),
    ticket: str | None = typer.Option(None, help="as if opened with this ticket reference"),
    reason: str | None = typer.Option(None, help="as if opened with this written reason"),
    config: Path | None = typer.Option(None, help="TOML settings file"),
) -> None:
    """Print the decision for USER opening DEVICE's web page, with every reason."""
    settings = command_settings(config)
    try:
        why = (SessionReason(ReasonKind.ALERT, alert_id=alert) if alert is not None
               else SessionReason.ticket(ticket) if ticket is not None
               else SessionReason.free_text(reason) if reason is not None else None)
    except SessionReasonInvalid as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    allow, text = asyncio.run(_explain(settings, user, device, source_ip, None if no_mfa else mfa_age, why,
                                          config=config))
    typer.echo(text)
    raise typer.Exit(0 if allow else 1)
