"""Agents as the portal's agents page sees them: per site, with their tenant
and certificates (the channel repository mints tokens and revokes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.domain import Agent, AgentCertificate, AgentId, CustomerId, DealerId, SiteId
from printgate.store.models.channel import AgentCertificateRow
from printgate.store.models.core import AgentRow, CustomerRow, SiteRow
from printgate.store.tenants import agent_from_row


@dataclass(frozen=True, slots=True)
class AgentOwner:
    """Who an agent belongs to: its site, that site's customer and dealer."""

    agent: Agent
    site_id: SiteId
    customer_id: CustomerId
    dealer_id: DealerId


@dataclass(frozen=True, slots=True)
class AgentListing:
    """An agent with the names of its site and customer, and its dealer (``printgate admin agents``)."""

    agent: Agent
    site_name: str
    customer_name: str
    dealer_id: DealerId


async def list_agents(s: AsyncSession, *, dealer_id: str | None = None) -> list[AgentListing]:
    """Every enrolled agent (or one dealer's), by dealer, customer, site and agent name."""
    q = (select(AgentRow, SiteRow.name, CustomerRow.name, CustomerRow.dealer_id)
         .join(SiteRow, SiteRow.id == AgentRow.site_id)
         .join(CustomerRow, CustomerRow.id == SiteRow.customer_id)
         .order_by(CustomerRow.dealer_id, CustomerRow.name, SiteRow.name, AgentRow.name))
    if dealer_id is not None:
        q = q.where(CustomerRow.dealer_id == dealer_id)
    return [AgentListing(agent_from_row(agent), site, customer, DealerId(dealer))
            for agent, site, customer, dealer in (await s.execute(q)).all()]


async def agents_of_sites(s: AsyncSession, site_ids: Sequence[str]) -> list[Agent]:
    if not site_ids:
        return []
    rows = (await s.execute(
        select(AgentRow).where(AgentRow.site_id.in_(list(site_ids))).order_by(AgentRow.name, AgentRow.id)
    )).scalars().all()
    return [agent_from_row(r) for r in rows]


async def certificates_of_agents(s: AsyncSession, agent_ids: Sequence[str]) -> dict[str, list[AgentCertificate]]:
    """Every certificate issued to each of ``agent_ids``, oldest first."""
    out: dict[str, list[AgentCertificate]] = {a: [] for a in agent_ids}
    if not agent_ids:
        return out
    rows = (await s.execute(
        select(AgentCertificateRow).where(AgentCertificateRow.agent_id.in_(list(agent_ids)))
        .order_by(AgentCertificateRow.not_before)
    )).scalars().all()
    for r in rows:
        out[r.agent_id].append(AgentCertificate(
            serial=r.serial, agent_id=AgentId(r.agent_id), site_id=SiteId(r.site_id),
            fingerprint=r.fingerprint, not_before=r.not_before, not_after=r.not_after,
            revoked_at=r.revoked_at, revoked_reason=r.revoked_reason,
        ))
    return out


async def owner_of_agent(s: AsyncSession, agent_id: str) -> AgentOwner | None:
    row = (await s.execute(
        select(AgentRow, CustomerRow.id, CustomerRow.dealer_id)
        .join(SiteRow, SiteRow.id == AgentRow.site_id)
        .join(CustomerRow, CustomerRow.id == SiteRow.customer_id)
        .where(AgentRow.id == agent_id)
    )).one_or_none()
    if row is None:
        return None
    agent_row, customer_id, dealer_id = row
    return AgentOwner(agent_from_row(agent_row), SiteId(agent_row.site_id), CustomerId(customer_id),
                      DealerId(dealer_id))
