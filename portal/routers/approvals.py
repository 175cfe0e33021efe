"""Customer approval workflow: technicians see their requests, customer admins
approve for a bounded time or deny."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import Response

from portal.deps import CsrfChecked, CurrentLogin, DbSession, State
from portal.pages import render, see_other
from printgate.domain import Approval, Role
from printgate.store import approvals as approvals_store

router = APIRouter(prefix="/approvals", tags=["approvals"])

MAX_APPROVAL_MINUTES = 8 * 60


@router.get("")
async def approvals_page(request: Request, state: State, s: DbSession, login: CurrentLogin) -> Response:
    user = login.user
    deciding = Role.CUSTOMER_ADMIN in user.roles and user.customer_id is not None
    if deciding and user.customer_id:
        rows = await approvals_store.list_approvals_of_customer(s, user.customer_id)
    else:
        rows = await approvals_store.list_approvals_of_user(s, user.id)
    return render(state, request, "approvals.html", login=login, approvals=rows, deciding=deciding,
                  now=state.clock())


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
    await state.record("approval.approved", request=request, user=login.user, device_id=row.device_id,
                       details={"approval_id": row.id, "for_user": row.user_id, "minutes": minutes})
    return see_other("/approvals")


@router.post("/{approval_id}/deny")
async def deny(request: Request, state: State, s: DbSession, login: CurrentLogin,
               _csrf: CsrfChecked, approval_id: str) -> Response:
    row = await _decidable(s, login, approval_id)
    row = await approvals_store.decide_approval(s, row.id, approved=False, by=login.user.email,
                                                now=state.clock())
    await state.record("approval.denied", request=request, user=login.user, device_id=row.device_id,
                       details={"approval_id": row.id, "for_user": row.user_id})
    return see_other("/approvals")
