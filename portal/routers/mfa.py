"""TOTP enrolment (QR code, recovery codes) and step-up verification."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from portal.auth import browser_sessions, second_factor, totp
from portal.deps import CsrfChecked, CurrentLogin, DbSession, OptionalLogin, State
from portal.pages import render, safe_next, see_other
from portal.routers.login import set_session_cookie
from portal.state import client_ip
from printgate.domain import Outcome, event_types
from printgate.store import portal_sessions, users
from printgate.store import recovery_codes as recovery_codes_store

router = APIRouter(prefix="/mfa", tags=["mfa"], include_in_schema=False)  # pages and forms: not the JSON API's description


def _signer(state: State) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(state.secret_key, salt="totp-enrol")


@router.get("/enrol")
async def enrol_page(request: Request, state: State, login: OptionalLogin, next: str = "") -> Response:
    if login is None:
        return see_other("/login")
    secret = totp.new_secret()
    uri = totp.provisioning_uri(secret, login.user.email)
    return render(state, request, "enrol.html", login=login, qr=totp.qr_svg(uri), secret=secret,
                  pending=_signer(state).dumps({"u": login.user.id, "s": secret}), next=safe_next(next))


@router.post("/enrol")
async def enrol_submit(
    request: Request, state: State, s: DbSession, login: OptionalLogin, _csrf: CsrfChecked,
    pending: Annotated[str, Form()], code: Annotated[str, Form()], next: Annotated[str, Form()] = "",
) -> Response:
    if login is None:
        return see_other("/login")
    now = state.clock()
    try:
        data = _signer(state).loads(pending, max_age=600)
    except BadSignature:
        return see_other("/mfa/enrol")
    user_id = login.user.id
    step = totp.matching_step(data["s"], code, now) if data.get("u") == user_id else None
    if step is None:
        await state.record(event_types.AUTH_MFA_ENROL, request=request, user=login.user, outcome=Outcome.FAILURE)
        uri = totp.provisioning_uri(data["s"], login.user.email)
        return render(state, request, "enrol.html", login=login, qr=totp.qr_svg(uri), secret=data["s"],
                      pending=pending, next=safe_next(next), status_code=401,
                      error="the code does not match: check the clock of your phone and retry")
    await users.enrol_totp(s, user_id, data["s"], used_step=step)
    codes = totp.new_recovery_codes()
    await recovery_codes_store.replace_recovery_codes(s, user_id, [totp.hash_recovery_code(c) for c in codes])
    await portal_sessions.delete_portal_session(s, login.session.id)
    token, _ = await browser_sessions.start(
        s, user_id=user_id, stage=browser_sessions.STAGE_FULL, now=now, source_ip=client_ip(request),
        mfa_method="totp",
    )
    await state.record(event_types.AUTH_MFA_ENROL, request=request, user=login.user)
    response = render(state, request, "recovery_codes.html", login=None, codes=codes,
                      next=safe_next(next))
    set_session_cookie(state, response, token)
    return response


@router.get("/step-up")
async def step_up_page(request: Request, state: State, login: CurrentLogin, next: str = "") -> Response:
    return render(state, request, "verify.html", login=login, next=safe_next(next), step_up=True)


@router.post("/step-up")
async def step_up_submit(
    request: Request, state: State, s: DbSession, login: CurrentLogin, _csrf: CsrfChecked,
    code: Annotated[str, Form()], next: Annotated[str, Form()] = "",
) -> Response:
    now = state.clock()
    result = await second_factor.check_code(s, login.user.id, code, now)
    if not result.ok:
        await state.record(event_types.AUTH_MFA_STEP_UP, request=request, user=login.user,
                           outcome=Outcome.FAILURE, details={"reason": result.value})
        return render(state, request, "verify.html", login=login, next=safe_next(next), step_up=True,
                      error="the code is wrong, expired or already used", status_code=401)
    await portal_sessions.record_second_factor(s, login.session.id, at=now, method=result.value)
    await state.record(event_types.AUTH_MFA_STEP_UP, request=request, user=login.user,
                       details={"method": result.value})
    return see_other(safe_next(next))
