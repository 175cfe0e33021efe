"""`printgate admin ...`: what an operator does before anyone can sign in (the first dealer
and its administrator), and from the shell afterwards (users, agents).

Every change is audited (actor ``cli:<os user>``) in the same transaction that makes it.
New accounts get a one-use sign-in link (an invitation: the person chooses a password,
then enrols an authenticator at first sign-in); no password passes through the shell.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from printgate.domain import event_types

app = typer.Typer(no_args_is_help=True, help="operator commands: first dealer, users, agents")

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML settings file")]


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


_CONFIG: ContextVar[Path | None] = ContextVar("printgate_admin_config", default=None)


def _settings(config: Path | None) -> Any:
    from printgate.errors import PrintgateError
    from printgate.settings import Settings

    _CONFIG.set(config)  # named in "run `printgate db upgrade --config …`" when the schema is missing
    try:
        return Settings.load(config)
    except PrintgateError as exc:
        raise _fail(exc.message) from exc


def _database(settings: Any) -> Any:
    from printgate.cli.schema_guard import schema_database

    return schema_database(settings.database_url, _CONFIG.get())


def _email(text: str, where: str) -> str:
    """The address trimmed and lower-cased; exit 2 when the sign-in form would not accept it
    (the invitee could choose a password and never sign in)."""
    from printgate.domain.email import normalise_email
    from printgate.errors import EmailInvalid

    try:
        return normalise_email(text)
    except EmailInvalid as exc:
        raise _fail(f"{where}: {exc.message}") from exc


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40]


@app.command("create-dealer")
def create_dealer(
    name: Annotated[str, typer.Argument(help="the dealer's name, e.g. 'Acme Print Services'")],
    admin_email: Annotated[str, typer.Option(help="e-mail of the dealer's first administrator")],
    dealer_id: Annotated[str | None, typer.Option("--id", help="dealer id (default: from the name)")] = None,
    config: ConfigOpt = None,
) -> None:
    """Create a dealer and invite its first administrator: prints a one-use sign-in link."""
    admin_email = _email(admin_email, "--admin-email")
    settings = _settings(config)
    did = dealer_id or _slug(name)
    if not did or not name.strip():
        raise _fail("give the dealer a name with letters or digits (or --id)")
    link, expires = asyncio.run(_create_dealer(settings, did, name.strip(), admin_email))
    typer.echo(f"dealer {did} ({name.strip()}) created")
    typer.echo(f"one-use sign-in link for {admin_email.strip().lower()} (dealer_admin), "
               f"valid until {expires:%Y-%m-%d %H:%M} UTC:")
    typer.echo(link)


async def _create_dealer(settings: Any, dealer_id: str, name: str, email: str) -> tuple[str, datetime]:
    from portal.invitations import create_invitation
    from printgate.domain import Dealer, DealerId, Role
    from printgate.store.tenants import add_dealer, get_dealer
    from printgate.store.users import get_user_by_email

    now = datetime.now(UTC)
    async with _database(settings) as db, db.transaction() as s:
        if await get_dealer(s, dealer_id) is not None:
            raise _fail(f"dealer {dealer_id} exists already: invite more users with "
                        f"`printgate admin add-user --dealer {dealer_id}`")
        if await get_user_by_email(s, email) is not None:
            raise _fail(f"{email} already has an account")
        await add_dealer(s, Dealer(DealerId(dealer_id), name))
        await s.flush()
        invitation = await create_invitation(s, email=email, roles=[Role.DEALER_ADMIN.value],
                                             dealer_id=dealer_id, customer_id=None,
                                             invited_by=_actor(), now=now)
        await _audit(db, s, [
            _event(event_types.TENANT_DEALER_ADDED, dealer_id=dealer_id, details={"name": name}),
            _event(event_types.RBAC_INVITED, dealer_id=dealer_id,
                   details={"roles": [Role.DEALER_ADMIN.value], "invitation": invitation.id},
                   personal={"subject": email.strip().lower()}),
        ])
    return invitation.link(settings.portal.public_url), invitation.expires_at


@app.command("add-user")
def add_user(
    email: Annotated[str, typer.Argument(help="the person's e-mail")],
    role: Annotated[list[str], typer.Option("--role", help="technician, dealer_admin, viewer, auditor "
                                                           "(dealer) or customer_admin, viewer, auditor "
                                                           "(customer); repeatable")],
    dealer: Annotated[str | None, typer.Option(help="dealer id (for the dealer's staff)")] = None,
    customer: Annotated[str | None, typer.Option(help="customer id or name (for the customer's staff; "
                                                       "the Customers page shows both)")] = None,
    replace_roles: Annotated[bool, typer.Option(
        "--replace-roles", help="for an existing account: replace its roles with the --role given "
                                "(audited); without it a different set of roles is refused")] = False,
    config: ConfigOpt = None,
) -> None:
    """Invite a user with roles into a dealer or a customer: prints a one-use sign-in link.

    For an existing account the link lets the person choose a new password; the person's earlier
    unused links stop working."""
    from portal.invitations import roles_problem

    email = _email(email, "EMAIL")
    if (dealer is None) == (customer is None):
        raise _fail("give exactly one of --dealer or --customer")
    problem = roles_problem(set(role), for_dealer=dealer is not None)
    if problem:
        raise _fail(problem)
    settings = _settings(config)
    link, expires, notes = asyncio.run(_add_user(settings, email, sorted(set(role)), dealer, customer,
                                                 replace_roles=replace_roles))
    for note in notes:
        typer.echo(note)
    typer.echo(f"one-use sign-in link for {email.strip().lower()} ({', '.join(sorted(set(role)))}), "
               f"valid until {expires:%Y-%m-%d %H:%M} UTC:")
    typer.echo(link)


async def _add_user(settings: Any, email: str, roles: list[str], dealer: str | None,
                    customer: str | None, *, replace_roles: bool = False) -> tuple[str, datetime, list[str]]:
    from portal.invitations import create_invitation
    from printgate.domain import Role
    from printgate.store.tenants import customers_named, get_customer, get_dealer
    from printgate.store.users import get_user_by_email, set_roles

    now = datetime.now(UTC)
    async with _database(settings) as db, db.transaction() as s:
        customer_row = await get_customer(s, customer) if customer else None
        if customer is not None and customer_row is None:
            named = await customers_named(s, customer)
            if len(named) > 1:
                raise _fail(f"{len(named)} customers are named {customer!r} (of dealers "
                            f"{', '.join(sorted({c.dealer_id for c in named}))}): give the id, one of "
                            f"{', '.join(c.id for c in named)}")
            customer_row = named[0] if named else None
        if dealer is not None and await get_dealer(s, dealer) is None:
            raise _fail(f"no dealer {dealer} (`printgate admin dealers` lists them)")
        if customer is not None and customer_row is None:
            raise _fail(f"no customer with the id or name {customer!r} (the dealer's Customers page in the "
                        "portal shows names and ids)")
        customer = customer_row.id if customer_row else None
        existing = await get_user_by_email(s, email)
        if existing is not None and (existing.dealer_id != dealer or existing.customer_id != customer):
            raise _fail(f"{email} already has an account in another organisation")
        notes: list[str] = []
        events = []
        dealer_of = dealer or (customer_row.dealer_id if customer_row else None)
        if existing is not None:
            had = sorted(r.value for r in existing.roles)
            if had != roles and not replace_roles:
                raise _fail(f"{existing.email} exists already with the roles {', '.join(had)}; to give them "
                            f"{', '.join(roles)} instead, run the same command with --replace-roles "
                            "(or change the roles on the portal's Users page)")
            if had != roles:
                await set_roles(s, existing.id, frozenset(Role(r) for r in roles))
                events.append(_event(event_types.RBAC_ROLES_CHANGED, dealer_id=dealer_of, customer_id=customer,
                                     details={"user": existing.id, "from": had, "to": roles},
                                     personal={"subject": existing.email}))
                notes.append(f"{existing.email} exists already: roles changed from {', '.join(had)} "
                             f"to {', '.join(roles)}")
            else:
                notes.append(f"{existing.email} exists already (roles {', '.join(had)} unchanged): "
                             "the link lets them choose a new password")
        invitation = await create_invitation(s, email=email, roles=roles, dealer_id=dealer,
                                             customer_id=customer, invited_by=_actor(), now=now)
        if invitation.revoked:
            notes.append(f"revoked {len(invitation.revoked)} earlier unused sign-in link(s) for "
                         f"{email.strip().lower()}: only the link below works")
        events.append(_event(
            event_types.RBAC_INVITED, dealer_id=dealer_of, customer_id=customer,
            details={"roles": roles, "invitation": invitation.id,
                     "revoked_invitations": list(invitation.revoked),
                     "existing_user": existing.id if existing is not None else None},
            personal={"subject": email.strip().lower()}))
        await _audit(db, s, events)
    return invitation.link(settings.portal.public_url), invitation.expires_at, notes


@app.command("dealers")
def dealers(config: ConfigOpt = None) -> None:
    """List the dealers (id and name)."""
    settings = _settings(config)
    for dealer_id, name in asyncio.run(_dealers(settings)):
        typer.echo(f"{dealer_id}\t{name}")


async def _dealers(settings: Any) -> list[tuple[str, str]]:
    from printgate.store.tenants import list_dealers

    async with _database(settings) as db, db.session() as s:
        return [(d.id, d.name) for d in await list_dealers(s)]


@app.command("agents")
def agents(
    dealer: Annotated[str | None, typer.Option(help="only this dealer's agents")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    config: ConfigOpt = None,
) -> None:
    """List the enrolled agents: id, name, customer, site, online, revoked, certificate expiry."""
    settings = _settings(config)
    lines = asyncio.run(_agents(settings, dealer))
    if as_json:
        typer.echo(json.dumps(lines, indent=2))
        return
    if not lines:
        typer.echo("no agents enrolled yet (dealer admins make enrolment tokens on the portal's Agents page)")
    for a in lines:
        state = "revoked" if a["revoked"] else ("online" if a["online"] else "offline")
        typer.echo(f"{a['id']}\t{a['name']}\t{a['dealer_id']}/{a['customer']}/{a['site']}\t{state}\t"
                   f"certificate until {a['certificate_valid_until'] or '-'}")


async def _agents(settings: Any, dealer: str | None) -> list[dict[str, Any]]:
    from printgate.store.site_agents import certificates_of_agents, list_agents

    async with _database(settings) as db, db.session() as s:
        rows = await list_agents(s, dealer_id=dealer)
        certs = await certificates_of_agents(s, [r.agent.id for r in rows])
    out = []
    for row in rows:
        agent = row.agent
        live = [c.not_after for c in certs[agent.id] if c.revoked_at is None]
        out.append({"id": agent.id, "name": agent.name, "dealer_id": row.dealer_id,
                    "customer": row.customer_name, "site": row.site_name, "site_id": agent.site_id, "online": bool(agent.online),
                    "revoked": bool(agent.revoked),
                    "certificate_valid_until": max(live).isoformat() if live else None})
    return out


@app.command("revoke-agent")
def revoke_agent(
    agent_id: Annotated[str, typer.Argument(help="the agent's id (`printgate admin agents`)")],
    reason: Annotated[str, typer.Option(help="why (kept with the revocation and in the audit trail)")],
    config: ConfigOpt = None,
) -> None:
    """Revoke an agent's certificates: its channel is cut within seconds; it must re-enrol with a new token."""
    settings = _settings(config)
    count = asyncio.run(_revoke(settings, agent_id, reason.strip() or "revoked by the operator"))
    typer.echo(f"agent {agent_id} revoked ({count} certificate{'s' if count != 1 else ''})")


async def _revoke(settings: Any, agent_id: str, reason: str) -> int:
    from printgate.domain.event_types import AGENT_REVOKED
    from printgate.store import channel
    from printgate.store.site_agents import owner_of_agent

    async with _database(settings) as db, db.transaction() as s:
        owner = await owner_of_agent(s, agent_id)
        if owner is None:
            raise _fail(f"no agent {agent_id} (`printgate admin agents` lists them)")
        if owner.agent.revoked:
            raise _fail(f"agent {agent_id} is already revoked")
        count = await channel.revoke_agent(s, agent_id, reason=reason[:200], now=datetime.now(UTC))
        await _audit(db, s, [_event(AGENT_REVOKED, dealer_id=owner.dealer_id, customer_id=owner.customer_id,
                                    details={"agent_id": agent_id, "site_id": owner.site_id,
                                             "reason": reason[:200], "certificates": count})])
    return count


def _event(type_: str, **kw: Any) -> Any:
    from printgate.domain import AuditEventIn

    return AuditEventIn(type=type_, actor=_actor(), **kw)


async def _audit(db: Any, s: Any, events: list[Any]) -> None:
    from audit.log import AuditLog

    await AuditLog(db, None).append_in(s, events)


def _security_alerts() -> None:
    from printgate.cli.admin_security_alerts import app as security_alerts_app

    app.add_typer(security_alerts_app, name="security-alerts")


_security_alerts()
