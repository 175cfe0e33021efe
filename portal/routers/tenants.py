"""Tenant pages: dealer -> customers -> sites, and the remote-access choice of each customer
and, if it wants its own, of each site (open / approval required / never / auto-approve while an
alert is open / ticket required), set by the dealer or the customer admin."""

from __future__ import annotations

import re
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import Response

from portal.deps import CsrfChecked, CurrentLogin, DbSession, State
from portal.pages import render, see_other
from printgate.domain import (
    AlertSeverity,
    Customer,
    CustomerId,
    DealerId,
    RemoteAccessMode,
    Role,
    SessionId,
    Site,
    SiteId,
    User,
    event_types,
)
from printgate.errors import CustomerNameTaken
from printgate.store import devices as devices_store
from printgate.store import sessions as sessions_store
from printgate.store import tenants as tenants_store
from printgate.store.tenants import add_customer, add_site

router = APIRouter(prefix="/admin/tenants", tags=["tenants"], include_in_schema=False)  # pages and forms: not the JSON API's description
MODE_WORDS = {
    RemoteAccessMode.OPEN: "open",
    RemoteAccessMode.APPROVAL_REQUIRED: "approval required",
    RemoteAccessMode.NEVER: "never",
    RemoteAccessMode.ALERT_AUTO: "auto-approve while an alert is open",
    RemoteAccessMode.TICKET: "ticket required",
}


NEVER_REASON = "access mode changed to never"


async def _end_live_sessions(state: State, s: DbSession, request: Request, me: User, customer_id: str,
                             site_ids: list[str]) -> None:
    """Access became ``never`` for these sites: their live sessions end (each audited here, with the
    reason; the broker ends them once the change is committed, so a Rejoin finds nothing)."""
    live = await sessions_store.live_session_ids_at(s, site_ids=site_ids)
    customer = await tenants_store.get_customer(s, customer_id)
    for sid in live:
        # attributed like the gateway's own dwa.* records (gateway.attribution): the session's
        # dealer, customer, site, device and user, so the tenant's auditors and the session
        # story show it (a customer admin has no dealer id of its own)
        session = await sessions_store.load_session(s, sid)
        device = await devices_store.get_device(s, session.device_id) if session else None
        await state.record(
            event_types.DWA_SESSION_ENDED_BY_ACCESS_MODE, request=request, user=me,
            dealer_id=customer.dealer_id if customer else me.dealer_id, customer_id=customer_id,
            device_id=session.device_id if session else None, session_id=sid,
            details={"reason": NEVER_REASON,
                     **({"site_id": device.site_id} if device else {}),
                     **({"user_id": session.user_id} if session else {})})
    if live:
        broker = state.broker

        async def end() -> None:
            for sid in live:
                await broker.close_session(SessionId(sid), reason=NEVER_REASON, actor=me.email)
        await state.after_commit(end)


def _slug(name: str) -> str:
    return (re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "x") + "-" + secrets.token_hex(3)


@router.get("")
async def tenants_page(request: Request, state: State, s: DbSession, login: CurrentLogin) -> Response:
    me = login.user
    if Role.DEALER_ADMIN in me.roles and me.dealer_id:
        customers = await tenants_store.list_customers_of_dealer(s, me.dealer_id)
    elif Role.CUSTOMER_ADMIN in me.roles and me.customer_id:
        found = await tenants_store.get_customer(s, me.customer_id)
        customers = [found] if found else []
    else:
        raise HTTPException(403, "only dealer or customer administrators manage tenants")
    sites = await tenants_store.list_sites_of_customers(s, [c.id for c in customers])
    return render(state, request, "tenants.html", login=login, customers=customers, sites=sites,
                  modes=list(RemoteAccessMode), dealer_admin=Role.DEALER_ADMIN in me.roles,
                  mode_words=MODE_WORDS, severities=list(AlertSeverity))


@router.post("/customers/{customer_id}/remote-access")
async def set_remote_access(request: Request, state: State, s: DbSession, login: CurrentLogin,
                            _csrf: CsrfChecked, customer_id: str,
                            mode: Annotated[RemoteAccessMode, Form()]) -> Response:
    me = login.user
    customer = await tenants_store.get_customer(s, customer_id)
    may = customer is not None and (
        (Role.DEALER_ADMIN in me.roles and customer.dealer_id == me.dealer_id)
        or (Role.CUSTOMER_ADMIN in me.roles and customer.id == me.customer_id))
    if customer is None or not may:
        raise HTTPException(404, "no such customer in your organisation")
    before = await tenants_store.set_remote_access(s, customer.id, mode)
    await state.record(event_types.TENANT_REMOTE_ACCESS_CHANGED, request=request, user=me, customer_id=customer.id,
                       details={"from": before.value if before else None, "to": mode.value})
    if mode is RemoteAccessMode.NEVER:  # the sites without a mode of their own follow the customer
        sites = await tenants_store.list_sites_of_customers(s, [customer.id])
        await _end_live_sessions(state, s, request, me, customer.id,
                                 [x.id for x in sites if x.remote_access is None])
    return see_other("/admin/tenants")


@router.post("/sites/{site_id}/remote-access")
async def set_site_access(request: Request, state: State, s: DbSession, login: CurrentLogin,
                          _csrf: CsrfChecked, site_id: str,
                          mode: Annotated[str, Form(max_length=32)] = "",
                          alert_min_severity: Annotated[AlertSeverity, Form()] = AlertSeverity.CRITICAL) -> Response:
    """A site's own mode ("": the customer's applies) and the alert threshold of alert_auto (audited)."""
    me = login.user
    try:
        chosen = RemoteAccessMode(mode) if mode else None
    except ValueError:
        raise HTTPException(422, f"unknown remote-access mode {mode[:32]!r}: choose one of "
                                 + ", ".join(m.value for m in RemoteAccessMode) + " or empty (as the customer)") from None
    site = await tenants_store.get_site(s, site_id)
    row = await tenants_store.get_customer(s, site.customer_id) if site else None
    may = row is not None and (
        (Role.DEALER_ADMIN in me.roles and row.dealer_id == me.dealer_id)
        or (Role.CUSTOMER_ADMIN in me.roles and row.id == me.customer_id))
    if site is None or row is None or not may:
        raise HTTPException(404, "no such site in your organisation")
    before = await tenants_store.set_site_access(s, site_id, chosen, alert_min_severity)
    await state.record(event_types.TENANT_SITE_ACCESS_CHANGED, request=request, user=me, customer_id=row.id, details={
        "site": site_id, "from": before.remote_access.value if before and before.remote_access else None,
        "to": chosen.value if chosen else None, "alert_min_severity": alert_min_severity.value})
    if (chosen or row.remote_access) is RemoteAccessMode.NEVER:
        await _end_live_sessions(state, s, request, me, row.id, [site_id])
    return see_other("/admin/tenants#site-access")


@router.post("/customers")
async def new_customer(request: Request, state: State, s: DbSession, login: CurrentLogin,
                       _csrf: CsrfChecked, name: Annotated[str, Form(min_length=1, max_length=200)]) -> Response:
    me = login.user
    if Role.DEALER_ADMIN not in me.roles or not me.dealer_id:
        raise HTTPException(403, "only dealer administrators add customers")
    taken = await tenants_store.customers_named(s, name, dealer_id=me.dealer_id)
    if taken:
        raise HTTPException(409, f"you already have a customer named {taken[0].name!r} (id {taken[0].id}): "
                                 "choose another name, e.g. with the town or department")
    customer = Customer(CustomerId(_slug(name)), DealerId(me.dealer_id), name.strip())
    try:
        await add_customer(s, customer)
    except CustomerNameTaken as exc:  # added meanwhile by a concurrent request: the index refused it
        raise HTTPException(409, exc.message) from exc
    await state.record(event_types.TENANT_CUSTOMER_ADDED, request=request, user=me, customer_id=customer.id,
                       details={"name": customer.name})
    return see_other("/admin/tenants")


@router.post("/customers/{customer_id}/sites")
async def new_site(request: Request, state: State, s: DbSession, login: CurrentLogin,
                   _csrf: CsrfChecked, customer_id: str,
                   name: Annotated[str, Form(min_length=1, max_length=200)]) -> Response:
    me = login.user
    customer = await tenants_store.get_customer(s, customer_id)
    if customer is None or Role.DEALER_ADMIN not in me.roles or customer.dealer_id != me.dealer_id:
        raise HTTPException(404, "no such customer in your organisation")
    site = Site(SiteId(_slug(name)), customer.id, name.strip())
    await add_site(s, site)
    await state.record(event_types.TENANT_SITE_ADDED, request=request, user=me, customer_id=customer.id,
                       details={"site": site.id, "name": site.name})
    return see_other("/admin/tenants")
