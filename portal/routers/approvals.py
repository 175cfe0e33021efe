"""Customer approval workflow: technicians see their requests, customer admins
approve for a bounded time or deny."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import Response

from portal.approval_notices import DURATIONS, approval_lines, decided_notice
from portal.deps import CsrfChecked, CurrentLogin, CurrentUser, DbSession, State, require_scope
from portal.pages import render, see_other
from portal.schemas.approvals import ApprovalState
from portal.state import PortalState
from printgate.domain import Approval, Role, event_types
from printgate.store import approvals as approvals_store
from printgate.store import users as users_store
from printgate.store.session_history import sessions_of_customer

router = APIRouter(prefix="/approvals", tags=["approvals"], include_in_schema=False)  # pages and forms: not the JSON API's description
api = APIRouter(prefix="/api/approvals", tags=["api"])

MAX_APPROVAL_MINUTES = 8 * 60


@router.get("")
async def approvals_page(request: Request, state: State, s: DbSession, login: CurrentLogin) -> Response:
    user = login.user
    deciding = Role.CUSTOMER_ADMIN in user.roles and user.customer_id is not None
    if deciding and user.customer_id:
        rows = await approvals_store.list_approvals_of_customer(s, user.customer_id)
    else:
        rows = await approvals_store.list_approvals_of_user(s, user.id)
    sessions = await sessions_of_customer(s, user.customer_id) if deciding and user.customer_id else []
    names = await users_store.display_names_of(
        s, {x.technician for x in sessions} | {a.decided_by for a in rows if a.decided_by})
    return render(state, request, "approvals.html", login=login, lines=await approval_lines(s, rows),
                  deciding=deciding, durations=DURATIONS, now=state.clock(), sessions=sessions, names=names)


@api.get("/{approval_id}", response_model=ApprovalState, dependencies=[Depends(require_scope("sessions:read"))])
async def approval_state(s: DbSession, user: CurrentUser, approval_id: str) -> ApprovalState:
    """A request's state, for its technician and the customer's administrators (the approvals page
    polls it to show the decision without reloading)."""
    a = await approvals_store.get_approval(s, approval_id)
    deciding = Role.CUSTOMER_ADMIN in user.roles and a is not None and a.customer_id == user.customer_id
    if a is None or (a.user_id != user.id and not deciding):
        raise HTTPException(404, "no such approval request of yours")
    return ApprovalState(id=a.id, status=a.status, device_id=a.device_id, approved_until=a.approved_until,
                         decided_by=a.decided_by)


async def _notify_decision(state: PortalState, s: DbSession, decided: Approval) -> None:
    if state.notifier is None:
        return
    (line,) = await approval_lines(s, [decided])
    notice, notifier = decided_notice(line, state.settings.public_url), state.notifier
    await state.after_commit(lambda: notifier.send(notice))


async def _decidable(s: DbSession, login: CurrentLogin, approval_id: str) -> Approval:
    row = await approvals_store.get_approval(s, approval_id)
    user = login.user
    if row is None or Role.CUSTOMER_ADMIN not in user.roles or row.customer_id != user.customer_id:
        raise HTTPException(404, "no such approval request for your organisation")
    if row.status != "pending":
        raise HTTPException(409, f"this request was already {row.status}")
    return row


@router.post("/{approval_id}/approve")
async def approve(request: Request, state: State, s: DbSession, login: CurrentLogin,
                  _csrf: CsrfChecked, approval_id: str,
                  minutes: Annotated[int, Form(ge=1, le=MAX_APPROVAL_MINUTES)] = 60) -> Response:
    row = await _decidable(s, login, approval_id)
    now = state.clock()
    row = await approvals_store.decide_approval(s, row.id, approved=True, by=login.user.email, now=now,
                                                until=now + timedelta(minutes=minutes))
    await state.record(event_types.APPROVAL_APPROVED, request=request, user=login.user, device_id=row.device_id,
                       details={"approval_id": row.id, "for_user": row.user_id, "minutes": minutes})
    await _notify_decision(state, s, row)
    return see_other("/approvals")


@router.post("/{approval_id}/deny")
async def deny(request: Request, state: State, s: DbSession, login: CurrentLogin,
               _csrf: CsrfChecked, approval_id: str) -> Response:
    row = await _decidable(s, login, approval_id)
    row = await approvals_store.decide_approval(s, row.id, approved=False, by=login.user.email,
                                                now=state.clock())
    await state.record(event_types.APPROVAL_DENIED, request=request, user=login.user, device_id=row.device_id,
                       details={"approval_id": row.id, "for_user": row.user_id})
    await _notify_decision(state, s, row)
    return see_other("/approvals")
