"""Fleet: the tenant's devices with status, a device page with charts, and the
JSON API (devices, readings over time, supplies, alerts).

A dealer's users see that dealer's devices, a customer's users only the
customer's; any other device answers 404, never 403, so ids do not leak.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.queries import MAX_PAGE, PAGE_SIZE, FleetFilter, overview, overview_page
from portal.deps import CsrfChecked, CurrentLogin, CurrentUser, State, require_role, require_scope
from portal.fleet.charts import Series, line_chart
from portal.fleet.forecast import days_until_empty, no_forecast_reason
from portal.pages import render, see_other
from portal.schemas.fleet import (
    AlertPublic,
    AlertsPublic,
    FleetDeviceDetail,
    FleetDevicePublic,
    ReadingPublic,
    SupplyPublic,
    device_detail,
)
from portal.state import Login, PortalState
from printgate.domain import (
    FleetDevice,
    Outcome,
    Reading,
    ReadingKind,
    Role,
    SupplyState,
    User,
    event_types,
)
from printgate.errors import AgentUnavailable
from printgate.fleet_alerts import SupplyThresholds
from printgate.store import readings_history as history
from printgate.store.agent_health import drops_at
from printgate.store.fleet import (
    TenantScope,
    cleared_alerts,
    current_supplies,
    device_readings,
    fleet_device,
    fleet_sites,
    open_alerts,
)
from printgate.store.readings_state import set_thresholds_of_tenant, thresholds_of_tenant
from printgate.store.sessions import openable_alerts

FLEET_ROLES = (Role.DEALER_ADMIN, Role.TECHNICIAN, Role.VIEWER, Role.CUSTOMER_ADMIN)
FORECAST_WINDOW = timedelta(days=90)
MAX_COUNTER_SERIES = 6
MAX_SITES_LISTED = 20  # more: the overview counts them; a customer's view lists its sites


def _aware(t: datetime | None) -> datetime | None:
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t


async def _device_or_404(s: AsyncSession, user: User, device_id: str) -> FleetDevice:
    found = await fleet_device(s, TenantScope.of(user), device_id)
    if found is None:
        raise HTTPException(404, f"no device {device_id!r} in your fleet")
    return found


def _supply_series(readings: list[Reading]) -> dict[int, list[tuple[datetime, float]]]:
    series: dict[int, list[tuple[datetime, float]]] = defaultdict(list)
    for r in readings:
        for sup in r.supplies:
            if sup.state is SupplyState.KNOWN and sup.percent is not None:
                series[sup.index].append((r.taken_at, sup.percent))
    return series


async def _supplies(s: AsyncSession, device_id: str, history: list[Reading]) -> list[SupplyPublic]:
    series = _supply_series(history)
    return [
        SupplyPublic.of(c.supply, taken_at=c.taken_at, empty_in_days=days_until_empty(series.get(c.supply.index, [])),
                        no_forecast=no_forecast_reason(series.get(c.supply.index, [])))
        for c in await current_supplies(s, device_id)
    ]


RESCAN_ROLES = (Role.DEALER_ADMIN, Role.TECHNICIAN, Role.CUSTOMER_ADMIN)
RESCAN_NOTICES = {
    "requested": "Rescan requested: the site's agent sweeps now; new printers appear here within a minute or two.",
    "offline": "The site's agent is offline: no rescan sent. Check that the agent service runs.",
}


# The fleet pages ``/fleet``, ``/fleet/{device_id}``, the API under ``/api/fleet``, and (when the
# portal has the agents' command channel, ``PortalState.commands``) the signed, audited
# "rescan now" of a site's agent.
router = APIRouter(tags=["fleet"])
may_view = Depends(require_role(*FLEET_ROLES))
api = [may_view, Depends(require_scope("fleet:read"))]


async def supply_history(s: AsyncSession, device_id: str, now: datetime) -> list[Reading]:
    return await device_readings(s, device_id, kind=ReadingKind.SUPPLIES, since=now - FORECAST_WINDOW,
                                 limit=500)


Problem = Literal["critical", "attention", "alerts", "low_supply", "offline", "no_reading"]
PROBLEM_QUERY = Query(description="only devices with this problem: critical (a critical open alert or the "
                                  "device down), attention (any open alert or a warning status), alerts, "
                                  "low_supply (a consumable at or below the warning threshold), offline (the "
                                  "site's agent), no_reading")


def _page_link(request: Request, **changes: object) -> str:
    params = {**dict(request.query_params), **{k: str(v) for k, v in changes.items()}}
    return f"{request.url.path}?{urlencode({k: v for k, v in params.items() if v not in ('', 'None')})}"


@router.get("/api/fleet/devices", response_model=list[FleetDevicePublic], dependencies=api,
            summary="Devices of your tenant with their status, one page at a time",
            description="At most `limit` devices from `offset`. The response's `Link` header has the "
                        "`next` (and `prev`) page's URL (RFC 8288) and `X-Total-Count` the number of "
                        "devices matching the filters; follow `next` until there is none. `sort=name` "
                        "(the default: customer, then name) keeps the order stable while you walk the pages; "
                        "`sort=attention` lists the worst devices first.")
async def api_devices(
    request: Request, response: Response, user: CurrentUser, state: State,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="devices per page")] = 100,
    offset: Annotated[int, Query(ge=0, description="devices to skip")] = 0,
    problem: Annotated[Problem | None, PROBLEM_QUERY] = None,
    customer_id: Annotated[str | None, Query(max_length=64, description="only this customer's devices")] = None,
    q: Annotated[str, Query(max_length=200, description="text in name, IP, model, serial, customer or site")] = "",
    sort: Annotated[Literal["name", "attention"], Query(description="name: by customer and name; "
                                                                   "attention: the worst first")] = "name",
) -> list[FleetDevicePublic]:
    async with state.db.session() as s:
        page = await overview_page(s, TenantScope.of(user), where=FleetFilter(problem, customer_id, q), sort=sort,
                                   offset=offset, limit=limit)
    links = []
    if offset + limit < page.total:
        links.append(f'<{_page_link(request, offset=offset + limit, limit=limit)}>; rel="next"')
    if offset > 0:
        links.append(f'<{_page_link(request, offset=max(0, offset - limit), limit=limit)}>; rel="prev"')
    if links:
        response.headers["link"] = ", ".join(links)
    response.headers["x-total-count"] = str(page.total)
    return [FleetDevicePublic.of(f) for f in page.devices]


@router.get("/api/fleet/devices/{device_id}", response_model=FleetDeviceDetail, dependencies=api,
            summary="One device: identity, status, current supplies and open alerts")
async def api_device(user: CurrentUser, state: State, device_id: str) -> FleetDeviceDetail:
    async with state.db.session() as s:
        f = await _device_or_404(s, user, device_id)
        supplies = await _supplies(s, device_id, await supply_history(s, device_id, state.clock()))
        alerts = [AlertPublic.of_tracked(a) for a in await open_alerts(s, device_id)]
    return device_detail(f, supplies, alerts)


@router.get("/api/fleet/devices/{device_id}/readings", response_model=list[ReadingPublic],
            dependencies=api, summary="Readings over time, oldest first")
async def api_readings(
    user: CurrentUser, state: State, device_id: str,
    kind: Annotated[ReadingKind | None, Query(description="only readings of this kind")] = None,
    since: Annotated[datetime | None, Query(description="ISO 8601; UTC when no zone")] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601; UTC when no zone")] = None,
    limit: Annotated[int, Query(ge=1, le=5000, description="the newest this many")] = 500,
) -> list[ReadingPublic]:
    since, until = _aware(since), _aware(until)
    if since is not None and until is not None and until < since:
        raise HTTPException(422, "until is before since: swap them")
    async with state.db.session() as s:
        await _device_or_404(s, user, device_id)
        found = await device_readings(s, device_id, kind=kind, since=since, until=until, limit=limit)
    return [ReadingPublic.of(r) for r in found]


@router.get("/api/fleet/devices/{device_id}/supplies", response_model=list[SupplyPublic],
            dependencies=api, summary="Current supply levels with a run-out forecast")
async def api_supplies(user: CurrentUser, state: State, device_id: str) -> list[SupplyPublic]:
    async with state.db.session() as s:
        await _device_or_404(s, user, device_id)
        return await _supplies(s, device_id, await supply_history(s, device_id, state.clock()))


@router.get("/api/fleet/devices/{device_id}/alerts", response_model=AlertsPublic, dependencies=api,
            summary="Open alerts and those cleared recently")
async def api_alerts(
    user: CurrentUser, state: State, device_id: str,
    cleared_within_hours: Annotated[int, Query(ge=0, le=24 * 365)] = 168,
) -> AlertsPublic:
    async with state.db.session() as s:
        await _device_or_404(s, user, device_id)
        since = state.clock() - timedelta(hours=cleared_within_hours)
        return AlertsPublic(
            open=[AlertPublic.of_tracked(a) for a in await open_alerts(s, device_id)],
            recently_cleared=[AlertPublic.of_tracked(a) for a in await cleared_alerts(s, device_id, since=since)],
        )


@router.get("/fleet", include_in_schema=False, dependencies=[may_view])
async def fleet_page(
    request: Request, state: State, login: CurrentLogin, rescan: str = "",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    problem: Annotated[Problem | None, Query()] = None,
    customer: Annotated[str | None, Query(max_length=64)] = None,
    q: Annotated[str, Query(max_length=200)] = "",
    sort: Annotated[Literal["attention", "name"], Query()] = "attention",
) -> Response:
    """Counts per problem (SQL aggregates) and one page of devices, the worst first."""
    return await _fleet_page(request, state, login, rescan=rescan, page=page, problem=problem, customer=customer,
                             q=q, sort=sort)


async def _fleet_page(
    request: Request, state: PortalState, login: Login, *, rescan: str = "", page: int = 1,
    problem: Problem | None = None, customer: str | None = None, q: str = "",
    sort: Literal["attention", "name"] = "attention", form_errors: dict[str, str] | None = None,
    sent: dict[str, str] | None = None,
) -> Response:
    """The fleet page; after a refused settings form (``form_errors``: field -> message) with the values
    as sent and each message beside its field, the form open (422)."""
    scope = TenantScope.of(login.user)
    async with state.db.session() as s:
        seen = await overview(s, scope, where=FleetFilter(problem, customer, q), sort=sort,
                              offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
        devices = [FleetDevicePublic.of(f) for f in seen.page.devices]
        all_sites = await fleet_sites(s, scope)
        alerts = await openable_alerts(s, [d.id for d in devices if d.open_alerts])  # one click to a session
    may_rescan = state.commands is not None and bool(set(RESCAN_ROLES) & login.user.roles)
    # a dealer with a thousand sites picks a customer (its name in the table) to see its sites
    sites = [x for x in all_sites if x.customer_id == customer] if customer else all_sites
    site_summary = None
    if len(sites) > MAX_SITES_LISTED:
        site_summary = {"sites": len(sites), "online": sum(1 for x in sites if x.online)}
        sites = []
    pages = max(1, -(-seen.page.total // PAGE_SIZE))
    pager = {
        "page": page, "pages": pages, "total": seen.page.total,
        "first": seen.page.offset + 1 if devices else 0, "last": seen.page.offset + len(devices),
        "prev": _page_link(request, page=page - 1, rescan="") if page > 1 else None,
        "next": _page_link(request, page=page + 1, rescan="") if page < pages else None,
    }
    filters = {"problem": problem, "customer": customer, "q": q, "sort": sort}
    return render(state, request, "fleet.html", login=login, devices=devices, sites=sites,
                  may_rescan=may_rescan, notice=RESCAN_NOTICES.get(rescan, ""), thresholds=seen.thresholds,
                  own_thresholds=seen.own_thresholds, may_set_thresholds=Role.DEALER_ADMIN in login.user.roles,
                  retention={"days": seen.retention_days, "own": seen.own_retention,
                             "min": history.MIN_RETENTION_DAYS, "max": history.MAX_RETENTION_DAYS},
                  alerts=alerts, may_open=bool(login.user.dealer_id), counts=seen.counts, pager=pager,
                  filters=filters, site_summary=site_summary, form_errors=form_errors or {}, sent=sent or {},
                  status_code=422 if form_errors else 200)


def _whole_number(text: str, what: str, errors: dict[str, str], field: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        errors[field] = f"{what} must be a whole number, not {text.strip()!r}" if text.strip() else f"{what} is needed"
        return None


@router.post("/fleet/thresholds", include_in_schema=False, dependencies=[may_view])
async def set_thresholds(request: Request, state: State, login: CurrentLogin, _csrf: CsrfChecked,
                         warning_percent: Annotated[str, Form()], critical_percent: Annotated[str, Form()],
                         ) -> Response:
    """A dealer administrator sets the dealer's supply alert thresholds (audited); wrong values: the page
    again with the message beside the field."""
    dealer = login.user.dealer_id
    if Role.DEALER_ADMIN not in login.user.roles or not dealer:
        raise HTTPException(403, "only a dealer administrator may change the supply thresholds")
    errors: dict[str, str] = {}
    warning = _whole_number(warning_percent, "the warning level", errors, "warning_percent")
    critical = _whole_number(critical_percent, "the critical level", errors, "critical_percent")
    for field, value in (("warning_percent", warning), ("critical_percent", critical)):
        if value is not None and not 0 <= value <= 100:
            errors[field] = f"a percentage from 0 to 100, not {value}"
    if not errors and warning is not None and critical is not None and critical > warning:
        errors["critical_percent"] = (f"critical ({critical} %) must be at or below warning ({warning} %): "
                                      "critical is the emptier level, e.g. warning 15, critical 5")
    if errors or warning is None or critical is None:
        return await _fleet_page(request, state, login, form_errors=errors,
                                 sent={"warning_percent": warning_percent, "critical_percent": critical_percent})
    wanted = SupplyThresholds(warning, critical)
    async with state.db.transaction() as s:
        before, _ = await thresholds_of_tenant(s, dealer)
        await set_thresholds_of_tenant(s, dealer, wanted, by=login.user.email, now=state.clock())
    await state.record(event_types.CONFIG_CHANGED, request=request, user=login.user,
                       details={"setting": "fleet.supply_thresholds",
                                "before": [before.warning_percent, before.critical_percent],
                                "after": [wanted.warning_percent, wanted.critical_percent]})
    return see_other("/fleet")


@router.post("/fleet/retention", include_in_schema=False, dependencies=[may_view])
async def set_retention(request: Request, state: State, login: CurrentLogin, _csrf: CsrfChecked,
                        days: Annotated[str, Form()]) -> Response:
    """A dealer administrator sets how many days of readings history the dealer keeps (audited);
    the cloud's readings-history task deletes older readings on its next pass. Wrong values: the page
    again with the message beside the field."""
    dealer = login.user.dealer_id
    if Role.DEALER_ADMIN not in login.user.roles or not dealer:
        raise HTTPException(403, "only a dealer administrator may change how long readings are kept")
    errors: dict[str, str] = {}
    kept = _whole_number(days, "the number of days", errors, "days")
    if kept is not None and not history.MIN_RETENTION_DAYS <= kept <= history.MAX_RETENTION_DAYS:
        errors["days"] = (f"keep readings {history.MIN_RETENTION_DAYS} to {history.MAX_RETENTION_DAYS} days, "
                          f"not {kept}: e.g. {history.DEFAULT_RETENTION_DAYS}")
    if errors or kept is None:
        return await _fleet_page(request, state, login, form_errors=errors, sent={"days": days})
    days_kept = kept
    async with state.db.transaction() as s:
        before = await history.set_retention(s, dealer, days_kept, by=login.user.email, now=state.clock())
    await state.record(event_types.FLEET_HISTORY_RETENTION_SET, request=request, user=login.user,
                       details={"days": days_kept, "before": before})
    return see_other("/fleet")


@router.post("/fleet/agents/{agent_id}/rescan", include_in_schema=False, dependencies=[may_view])
async def rescan_site(request: Request, state: State, login: CurrentLogin, _csrf: CsrfChecked,
                      agent_id: str) -> Response:
    """Ask a site's agent to sweep now (a signed command; audited whether it could be sent or not)."""
    commands = state.commands
    if commands is None:
        raise HTTPException(404, "rescan is not available here")
    if not set(RESCAN_ROLES) & login.user.roles:
        raise HTTPException(403, "only technicians and administrators may ask for a rescan")
    async with state.db.session() as s:
        found = await fleet_sites(s, TenantScope.of(login.user), agent_id=agent_id)
    if not found:
        raise HTTPException(404, f"no site agent {agent_id!r} in your fleet")
    site = found[0]
    details: dict[str, object] = {"agent_id": agent_id, "site": site.site_name}
    try:
        details["command_id"] = await commands.rescan(agent_id, requested_by=login.user.email)
    except AgentUnavailable as exc:
        await state.record(event_types.AGENT_RESCAN_REQUESTED, request=request, user=login.user,
                           customer_id=site.customer_id, outcome=Outcome.FAILURE,
                           details={**details, "reason": exc.message})
        return see_other("/fleet?rescan=offline")
    await state.record(event_types.AGENT_RESCAN_REQUESTED, request=request, user=login.user,
                       customer_id=site.customer_id, details=details)
    return see_other("/fleet?rescan=requested")


@router.get("/fleet/{device_id}", include_in_schema=False, dependencies=[may_view])
async def device_page(
    request: Request, state: State, login: CurrentLogin, device_id: str,
    days: Annotated[int, Query(ge=1, le=365)] = 30,
) -> Response:
    now = state.clock()
    async with state.db.session() as s:
        f = await _device_or_404(s, login.user, device_id)
        history = await supply_history(s, device_id, now)
        supplies = await _supplies(s, device_id, history)
        alerts = [AlertPublic.of_tracked(a) for a in await open_alerts(s, device_id)]
        cleared = [AlertPublic.of_tracked(a)
                   for a in await cleared_alerts(s, device_id, since=now - timedelta(days=7))]
        since = now - timedelta(days=days)
        counters = await device_readings(s, device_id, kind=ReadingKind.COUNTERS, since=since)
        gaps = await drops_at(s, f.device.agent_id, f.device.ip)
    detail = device_detail(f, supplies, alerts)
    counter_points: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for r in counters:
        for c in r.counters:
            counter_points[c.name].append((r.taken_at, float(c.value)))
    counter_chart = line_chart(
        [Series(name, tuple(pts)) for name, pts in list(counter_points.items())[:MAX_COUNTER_SERIES]],
        chart_id="counter-chart", title=f"Page counters, last {days} days", until=now,
    )
    names = {sup.index: (sup.description, sup.colour) for sup in supplies}
    supply_chart = line_chart(
        [Series(names.get(i, (f"supply {i}", None))[0], tuple(p for p in pts if p[0] >= since),
                names.get(i, ("", None))[1])
         for i, pts in sorted(_supply_series(history).items())],
        chart_id="supply-chart", title=f"Supply levels, last {days} days", y_unit=" %", y_min=0, y_max=100,
        until=now,
    )
    return render(state, request, "fleet_device.html", login=login, device=detail, cleared=cleared,
                  counter_chart=counter_chart, supply_chart=supply_chart, days=days, gaps=gaps)
