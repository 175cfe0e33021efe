"""What the portal reads about a fleet (the SQL is in ``printgate.store.fleet``).

The overview of a dealer's fleet is counts and one page: a person never reads 20,000 rows
at once, so the counts per problem are SQL aggregates and the table is one sorted, filtered
page (the worst devices first) of at most ``MAX_PAGE`` devices; only that page's devices
are loaded and turned into objects.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from printgate.fleet_alerts import SupplyThresholds
from printgate.store.fleet import (
    PROBLEMS,
    SORTS,
    FleetCounts,
    FleetFilter,
    FleetPage,
    TenantScope,
    fleet_counts_and_page,
    fleet_page,
)
from printgate.store.readings_history import DEFAULT_RETENTION_DAYS, retention_of
from printgate.store.readings_state import thresholds_of_tenant
from printgate.store.tenants import get_customer

PAGE_SIZE = 50
MAX_PAGE = 1000

__all__ = ["MAX_PAGE", "PAGE_SIZE", "PROBLEMS", "SORTS", "FleetCounts", "FleetFilter", "FleetOverview",
           "FleetPage", "dealer_of", "overview", "overview_page"]


@dataclass(frozen=True, slots=True)
class FleetOverview:
    counts: FleetCounts
    page: FleetPage
    thresholds: SupplyThresholds
    own_thresholds: bool  # the dealer set them (else the defaults)
    retention_days: int = DEFAULT_RETENTION_DAYS  # days of readings history the dealer keeps
    own_retention: bool = False  # the dealer set it (else the default)


async def dealer_of(s: AsyncSession, scope: TenantScope) -> str | None:
    """The dealer whose thresholds apply (a customer's users see their dealer's)."""
    if scope.dealer_id:
        return scope.dealer_id
    if scope.customer_id:
        customer = await get_customer(s, scope.customer_id)
        return customer.dealer_id if customer is not None else None
    return None


async def overview_page(s: AsyncSession, scope: TenantScope, *, where: FleetFilter = FleetFilter(),
                        sort: str = "attention", offset: int = 0, limit: int = PAGE_SIZE) -> FleetPage:
    """One page of devices (no counts): what the JSON API lists."""
    dealer = await dealer_of(s, scope)
    thresholds, _ = await thresholds_of_tenant(s, dealer) if dealer else (SupplyThresholds(), False)
    return await fleet_page(s, scope, warning_percent=thresholds.warning_percent, where=where, sort=sort,
                            offset=offset, limit=min(limit, MAX_PAGE))


async def overview(s: AsyncSession, scope: TenantScope, *, where: FleetFilter = FleetFilter(),
                   sort: str = "attention", offset: int = 0, limit: int = PAGE_SIZE) -> FleetOverview:
    """The overview page: counts per problem for the whole scope and one page of devices."""
    dealer = await dealer_of(s, scope)
    thresholds, own = await thresholds_of_tenant(s, dealer) if dealer else (SupplyThresholds(), False)
    counts, page = await fleet_counts_and_page(s, scope, warning_percent=thresholds.warning_percent, where=where,
                                               sort=sort, offset=offset, limit=min(limit, MAX_PAGE))
    retention, own_retention = await retention_of(s, dealer) if dealer else (DEFAULT_RETENTION_DAYS, False)
    return FleetOverview(counts, page, thresholds, own, retention, own_retention)
