"""The dealer's devices and "Open web page" (docs/architecture.md, DWA flow step 1)."""

from __future__ import annotations

import re
import secrets
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import Response

from portal.approval_notices import approval_lines, approvers_of, requested_notice
from portal.deps import CsrfChecked, CurrentLogin, DbSession, State
from portal.device_list import (
    ALERT_CHOICES,
    GROUPINGS,
    STATUS_CHOICES,
    DeviceFilter,
    customer_choices,
    page_groups,
    site_choices,
)
from portal.pages import landing_page, render, see_other
from portal.state import client_ip
from printgate.domain import DeviceId, ReasonKind, Role, SessionReason, event_types
from printgate.errors import SessionReasonInvalid
from printgate.interfaces import SessionLaunch
from printgate.store import approvals
from printgate.store import devices as devices_repo
from printgate.store import sessions as sessions_store
from printgate.store.device_list import (
    DeviceChoices,
    DeviceListPage,
    device_choices,
    device_list_page,
)
from printgate.store.devices import dealer_of_device, get_device
from printgate.store.session_history import sessions_of_user

router = APIRouter(tags=["devices"], include_in_schema=False)  # pages and forms: not the JSON API's description
_ALERT_ID = re.compile(r"[0-9]{1,18}")
PAGE_SIZE = 100  # devices per page: a dealer with 20,000 devices gets a page the browser can draw


def _page_link(request: Request, page: int) -> str:
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "page"]
    return "/devices?" + urlencode([*params, ("page", str(page))])


@router.get("/devices")
async def devices_page(request: Request, state: State, s: DbSession, login: CurrentLogin, q: str = "",
                       customer: str = "", site: str = "", status: str = "", alert: str = "",
                       group: str = "customer",
                       page: Annotated[int, Query(ge=1, le=1_000_000)] = 1) -> Response:
    """The dealer's devices: search, filters, grouping, status, alerts, lowest supply; the
    user's own live sessions are marked (Open web page rejoins them). ``PAGE_SIZE`` devices a
    page, with the count of all that match."""
    if (home := landing_page(login.user)) != "/devices":
        return see_other(home)  # e.g. an auditor right after signing in
    dealer = login.user.dealer_id
    flt = DeviceFilter.of(q, customer, site, status, alert, group)
    now = state.clock()
    live = {line.device_id: line for line in await sessions_of_user(s, login.user.id, limit=20)
            if line.is_live(now)}
    found, choices = DeviceListPage([], 0, 0), DeviceChoices([], [])
    if dealer:  # search, filters, order, counts and paging in SQL: one page of devices loaded
        found = await device_list_page(s, dealer, flt.where(), offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
        choices = await device_choices(s, dealer)
    matching = found.matching
    pages = max(1, -(-matching // PAGE_SIZE))
    page = min(found.offset // PAGE_SIZE + 1, pages)  # past the end: the last page
    groups = page_groups(found.devices, flt.group)
    on_page = len(found.devices)
    pager = {"page": page, "pages": pages, "first": (page - 1) * PAGE_SIZE + 1 if on_page else 0,
             "last": (page - 1) * PAGE_SIZE + on_page,
             "prev": _page_link(request, page - 1) if page > 1 else None,
             "next": _page_link(request, page + 1) if page < pages else None}
    shown = [f.device.id for f in found.devices if f.open_alerts]
    return render(state, request, "devices.html", login=login, groups=groups, flt=flt, matching=matching,
                  pager=pager, total=found.total, customers=customer_choices(choices), sites=site_choices(choices),
                  statuses=STATUS_CHOICES, alert_choices=ALERT_CHOICES, groupings=GROUPINGS, live=live, now=now,
                  alerts=await sessions_store.openable_alerts(s, shown), may_open=True)


def session_reason(alert_id: str, ticket: str, reason: str) -> SessionReason | None:
    """The reason given with "Open web page" (issue 20): an alert of the device (by id; the broker
    takes the rest from the store), a ticket reference or free text; None when none is given.
    Raises 422 with what to fix for a malformed one (nothing is opened)."""
    try:
        if alert_id.strip():
            if not _ALERT_ID.fullmatch(alert_id.strip()):  # ASCII digits only (str.isdigit takes superscripts and other scripts' digits)
                raise SessionReasonInvalid(f"alert {alert_id[:20]!r} is not an alert number (digits 0-9)")
            return SessionReason(ReasonKind.ALERT, alert_id=int(alert_id.strip()))
        if ticket.strip():
            return SessionReason.ticket(ticket)
        if reason.strip():
            return SessionReason.free_text(reason)
    except SessionReasonInvalid as exc:
        raise HTTPException(422, exc.message) from exc
    return None


@router.post("/devices/{device_id}/open")
async def open_device(request: Request, state: State, s: DbSession, login: CurrentLogin,
                      _csrf: CsrfChecked, device_id: str,
                      alert_id: Annotated[str, Form(max_length=40)] = "",
                      ticket: Annotated[str, Form(max_length=200)] = "",
                      reason: Annotated[str, Form(max_length=2000)] = "") -> Response:
    now = state.clock()
    ip = client_ip(request)
    why = session_reason(alert_id, ticket, reason)
    # the user's own live session on this device (e.g. its tab was closed): rejoin it
    url = await state.broker.rejoin_session(login.user.id, DeviceId(device_id), source_ip=ip)
    if url is not None:
        return see_other(url)
    result = await state.broker.open_session(
        login.user, DeviceId(device_id), source_ip=ip, mfa_age_seconds=login.mfa_age_seconds(now),
        reason=why,
    )
    decision = result.decision  # the broker audited it, with every reason
    if isinstance(result, SessionLaunch):
        return see_other(result.launch_url)
    device = await get_device(s, device_id)
    owner = await dealer_of_device(s, device_id)
    own = device is not None and owner is not None and owner[0] == login.user.dealer_id
    pending = await approvals.pending_approval(s, login.user.id, device_id) if own else None
    if own and why is not None and why.kind is ReasonKind.ALERT:  # as the store has it (or none)
        why = await sessions_store.alert_reason(s, device_id, why.alert_id)
    return render(state, request, "refused.html", login=login, status_code=403,
                  device=device if own else None, device_id=device_id, decision=decision,
                  message=result.message, pending=pending, why=why)


@router.post("/devices/{device_id}/approval-request")
async def request_approval(request: Request, state: State, s: DbSession, login: CurrentLogin,
                           _csrf: CsrfChecked, device_id: str,
                           reason: Annotated[str, Form()] = "") -> Response:
    owner = await dealer_of_device(s, device_id)
    if owner is None or owner[0] != login.user.dealer_id:
        raise HTTPException(404, "no such device")
    if not reason.strip():
        raise HTTPException(422, "say why you need access: the customer's administrators decide on it")
    try:  # cleaned like every session reason (no control or bidi characters reach the approver)
        cleaned = SessionReason.free_text(reason).text
    except SessionReasonInvalid as exc:
        raise HTTPException(422, exc.message) from exc
    if await approvals.pending_approval(s, login.user.id, device_id) is None:
        approval = await approvals.request_approval(
            s, approval_id=secrets.token_hex(8), user_id=login.user.id, device_id=device_id,
            customer_id=owner[1], reason=cleaned, now=state.clock())
        await state.record(event_types.APPROVAL_REQUESTED, request=request, user=login.user,
                           device_id=device_id, customer_id=owner[1],
                           details={"approval_id": approval.id})
        if state.notifier is not None:  # the customer's administrators hear of it
            (line,) = await approval_lines(s, [approval])
            notice = requested_notice(line, await approvers_of(s, owner[1]), state.settings.public_url)
            notifier = state.notifier
            await state.after_commit(lambda: notifier.send(notice))
    return see_other("/approvals")


@router.post("/devices/{device_id}/repin")
async def repin_device(request: Request, state: State, s: DbSession, login: CurrentLogin,
                       _csrf: CsrfChecked, device_id: str) -> Response:
    """A dealer admin accepts a device's changed certificate/identity (audited)."""
    if Role.DEALER_ADMIN not in login.user.roles:
        raise HTTPException(403, "only a dealer administrator may re-pin a device")
    owner = await dealer_of_device(s, device_id)
    device = await get_device(s, device_id) if owner and owner[0] == login.user.dealer_id else None
    if device is None or owner is None:
        raise HTTPException(404, "no such device")
    await devices_repo.repin(s, device_id)
    await state.record(
        event_types.DEVICE_REPINNED, request=request, user=login.user, device_id=device_id, customer_id=owner[1],
        details={"old_tls_fingerprint": device.identity.tls_fingerprint,
                 "was_verified": device.identity_verified},
    )
    return see_other("/devices")
