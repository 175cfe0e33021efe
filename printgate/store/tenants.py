"""Dealers, customers, sites, agents and users: rows <-> domain types."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.domain import (
    Agent,
    AgentId,
    AlertSeverity,
    Customer,
    CustomerId,
    Dealer,
    DealerId,
    RemoteAccessMode,
    Role,
    Site,
    SiteId,
    User,
    UserId,
)
from printgate.errors import CustomerNameTaken
from printgate.store.models.core import AgentRow, CustomerRow, DealerRow, SiteRow, UserRow


def user_from_row(row: UserRow) -> User:
    return User(
        id=UserId(row.id),
        email=row.email,
        display_name=row.display_name,
        roles=frozenset(Role(r) for r in row.roles),
        dealer_id=DealerId(row.dealer_id) if row.dealer_id else None,
        customer_id=CustomerId(row.customer_id) if row.customer_id else None,
        disabled=row.disabled,
    )


def agent_from_row(row: AgentRow) -> Agent:
    return Agent(
        id=AgentId(row.id), site_id=SiteId(row.site_id), name=row.name,
        online=row.online, last_seen=row.last_seen, revoked=row.revoked,
    )


async def add_dealer(s: AsyncSession, dealer: Dealer) -> None:
    s.add(DealerRow(id=dealer.id, name=dealer.name))


async def add_customer(s: AsyncSession, customer: Customer) -> None:
    """Add ``customer``; ``CustomerNameTaken`` when its dealer has one of that name (the database's
    unique index decides, so two concurrent additions cannot both pass; the session stays usable)."""
    try:
        async with s.begin_nested():
            s.add(CustomerRow(id=customer.id, dealer_id=customer.dealer_id, name=customer.name,
                              remote_access=customer.remote_access.value))
    except IntegrityError as exc:
        taken = await customers_named(s, customer.name, dealer_id=customer.dealer_id)
        if not taken:
            raise
        raise CustomerNameTaken(
            f"dealer {customer.dealer_id} already has a customer named {taken[0].name!r} (id {taken[0].id}): "
            "choose another name, e.g. with the town or department") from exc


async def add_site(s: AsyncSession, site: Site) -> None:
    s.add(SiteRow(id=site.id, customer_id=site.customer_id, name=site.name,
                  remote_access=site.remote_access.value if site.remote_access else None,
                  alert_min_severity=site.alert_min_severity.value))


async def add_agent(s: AsyncSession, agent: Agent) -> None:
    s.add(AgentRow(id=agent.id, site_id=agent.site_id, name=agent.name,
                   online=agent.online, revoked=agent.revoked))


async def add_user(
    s: AsyncSession, user: User, *, password_hash: str | None = None,
    totp_secret: str | None = None,
) -> None:
    s.add(UserRow(
        id=user.id, email=user.email, display_name=user.display_name,
        roles=sorted(r.value for r in user.roles), dealer_id=user.dealer_id,
        customer_id=user.customer_id, password_hash=password_hash,
        totp_secret=totp_secret, disabled=user.disabled,
    ))


def customer_from_row(row: CustomerRow) -> Customer:
    return Customer(id=CustomerId(row.id), dealer_id=DealerId(row.dealer_id), name=row.name,
                    remote_access=RemoteAccessMode(row.remote_access))


async def get_dealer(s: AsyncSession, dealer_id: str) -> Dealer | None:
    row = await s.get(DealerRow, dealer_id)
    return Dealer(DealerId(row.id), row.name) if row else None


async def list_dealers(s: AsyncSession) -> list[Dealer]:
    rows = (await s.execute(select(DealerRow).order_by(DealerRow.id))).scalars().all()
    return [Dealer(DealerId(r.id), r.name) for r in rows]


async def get_customer(s: AsyncSession, customer_id: str) -> Customer | None:
    row = await s.get(CustomerRow, customer_id)
    return customer_from_row(row) if row else None


async def get_site(s: AsyncSession, site_id: str) -> Site | None:
    row = await s.get(SiteRow, site_id)
    return site_from_row(row) if row else None


async def get_agent(s: AsyncSession, agent_id: str) -> Agent | None:
    row = await s.get(AgentRow, agent_id)
    return agent_from_row(row) if row else None


async def set_agent_presence(s: AsyncSession, agent_id: str, *, online: bool, at: datetime) -> None:
    row = await s.get(AgentRow, agent_id)
    if row is not None:
        row.online = online
        row.last_seen = at


async def get_user(s: AsyncSession, user_id: str) -> User | None:
    row = await s.get(UserRow, user_id)
    return user_from_row(row) if row else None


async def tenant_of_site(s: AsyncSession, site_id: str) -> tuple[Customer, Site] | None:
    site = await get_site(s, site_id)
    if site is None:
        return None
    customer = await get_customer(s, site.customer_id)
    return (customer, site) if customer else None


async def customers_named(s: AsyncSession, name: str, *, dealer_id: str | None = None) -> list[Customer]:
    """Customers whose name is ``name`` (case and surrounding blanks ignored), of one dealer or of all."""
    q = select(CustomerRow).where(func.lower(CustomerRow.name) == name.strip().lower())
    if dealer_id is not None:
        q = q.where(CustomerRow.dealer_id == dealer_id)
    rows = (await s.execute(q.order_by(CustomerRow.dealer_id, CustomerRow.id))).scalars().all()
    return [customer_from_row(r) for r in rows]


async def list_customers_of_dealer(s: AsyncSession, dealer_id: str) -> list[Customer]:
    rows = (await s.execute(
        select(CustomerRow).where(CustomerRow.dealer_id == dealer_id).order_by(CustomerRow.name)
    )).scalars().all()
    return [customer_from_row(r) for r in rows]


async def list_sites_of_customers(s: AsyncSession, customer_ids: list[str]) -> list[Site]:
    if not customer_ids:
        return []
    rows = (await s.execute(
        select(SiteRow).where(SiteRow.customer_id.in_(customer_ids)).order_by(SiteRow.name)
    )).scalars().all()
    return [site_from_row(r) for r in rows]


def site_from_row(row: SiteRow) -> Site:
    try:
        mode = RemoteAccessMode(row.remote_access) if row.remote_access else None
    except ValueError:  # a value this version does not know: no remote access (fail closed)
        mode = RemoteAccessMode.NEVER
    try:
        severity = AlertSeverity(row.alert_min_severity or AlertSeverity.CRITICAL.value)
    except ValueError:  # unknown value: the stricter threshold (fail closed)
        severity = AlertSeverity.CRITICAL
    return Site(SiteId(row.id), CustomerId(row.customer_id), row.name, mode, severity)


async def set_site_access(
    s: AsyncSession, site_id: str, mode: RemoteAccessMode | None, min_severity: AlertSeverity,
) -> Site | None:
    """Set a site's own remote-access mode (None: the customer's applies) and alert threshold with
    the request's transaction; the site as it was before, or None when there is no such site."""
    row = await s.get(SiteRow, site_id)
    if row is None:
        return None
    before = site_from_row(row)
    row.remote_access = mode.value if mode is not None else None
    row.alert_min_severity = min_severity.value
    return before


async def set_remote_access(s: AsyncSession, customer_id: str, mode: RemoteAccessMode) -> RemoteAccessMode | None:
    """Set the customer's remote-access choice with the request's transaction (unit of work);
    the choice before, or None when there is no such customer."""
    row = await s.get(CustomerRow, customer_id)
    if row is None:
        return None
    before = RemoteAccessMode(row.remote_access)
    row.remote_access = mode.value
    return before
