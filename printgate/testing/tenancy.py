"""Tenancy builders: dealers, customers, sites, agents and devices, stored in dependency order.

    await (Tenancy().dealer("d1").customer("c1", "d1").site("s1", "c1")
           .agent("a1", "s1", online=True).device("dev1", "s1", "a1", "127.0.20.1")
           .save(db))

Names default to something readable; ``chain`` adds one dealer → customer → site → agent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Self

from printgate.domain import (
    Agent,
    AgentId,
    Customer,
    CustomerId,
    Dealer,
    DealerId,
    Device,
    DeviceId,
    DeviceIdentity,
    RemoteAccessMode,
    Site,
    SiteId,
)
from printgate.store import devices, tenants
from printgate.store.db import Database


@dataclass
class Tenancy:
    """What to add; ``save`` stores it all in one transaction."""

    dealers: list[Dealer] = field(default_factory=list)
    customers: list[Customer] = field(default_factory=list)
    sites: list[Site] = field(default_factory=list)
    agents: list[Agent] = field(default_factory=list)
    devices: list[Device] = field(default_factory=list)

    def dealer(self, dealer_id: str, name: str | None = None) -> Self:
        self.dealers.append(Dealer(DealerId(dealer_id), name or f"Dealer {dealer_id}"))
        return self

    def customer(self, customer_id: str, dealer_id: str, name: str | None = None,
                 remote_access: RemoteAccessMode = RemoteAccessMode.OPEN) -> Self:
        self.customers.append(Customer(CustomerId(customer_id), DealerId(dealer_id),
                                       name or f"Customer {customer_id}", remote_access))
        return self

    def site(self, site_id: str, customer_id: str, name: str = "HQ") -> Self:
        self.sites.append(Site(SiteId(site_id), CustomerId(customer_id), name))
        return self

    def agent(self, agent_id: str, site_id: str, *, name: str = "agent", online: bool = False) -> Self:
        self.agents.append(Agent(AgentId(agent_id), SiteId(site_id), name, online=online))
        return self

    def device(self, device_id: str, site_id: str, agent_id: str, ip: str,
               identity: DeviceIdentity | None = None, *, name: str = "") -> Self:
        self.devices.append(Device(DeviceId(device_id), SiteId(site_id), AgentId(agent_id), ip,
                                   identity or DeviceIdentity(), name=name))
        return self

    def chain(self, *, dealer: str, customer: str, site: str, agent: str | None = None,
              online: bool = False) -> Self:
        """One dealer → customer → site (→ agent)."""
        self.dealer(dealer).customer(customer, dealer).site(site, customer)
        return self.agent(agent, site, online=online) if agent is not None else self

    async def save(self, db: Database, *, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        async with db.transaction() as s:
            for dealer in self.dealers:
                await tenants.add_dealer(s, dealer)
            await s.flush()
            for customer in self.customers:
                await tenants.add_customer(s, customer)
            await s.flush()
            for site in self.sites:
                await tenants.add_site(s, site)
            await s.flush()
            for agent in self.agents:
                await tenants.add_agent(s, agent)
            await s.flush()
            for device in self.devices:
                await devices.add_device(s, device, now=now)
