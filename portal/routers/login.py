"""Sign in (email + password), second factor, sign out (here / everywhere)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from portal.auth import browser_sessions, second_factor
from portal.auth.passwords import hash_password, needs_rehash, verify_password
from portal.deps import CsrfChecked, CurrentLogin, DbSession, OptionalLogin, State
from portal.pages import render, safe_next, see_other
from portal.routers.dwa_sessions import end_all_of
from portal.state import client_ip
from printgate.domain import Outcome, event_types
from printgate.store import portal_sessions, sso, users

router = APIRouter(tags=["login"], include_in_schema=False)  # pages and forms: not the JSON API's description

GENERIC_FAILURE = "email or password is wrong"


def set_session_cookie(state: State, response: Response, token: str) -> None:
    response.set_cookie(
        browser_sessions.COOKIE, token, httponly=True, samesite="lax",
        secure=state.settings.cookie_secure, path="/",
        max_age=state.settings.session_absolute_hours * 3600,
    )


@router.get("/login")
async def login_page(request: Request, state: State, s: DbSession, next: str = "",
                     password_set: bool = False) -> Response:
    providers = await sso.list_sso_providers(s)
    return render(state, request, "login.html", next=safe_next(next), providers=providers,
                  password_set=password_set)


@router.post("/login")
async def login_submit(
    request: Request, state: State, s: DbSession, _csrf: CsrfChecked,
    email: Annotated[str, Form()], password: Annotated[str, Form()], next: Annotated[str, Form()] = "",
) -> Response:
    now = state.clock()
    account = await users.get_sign_in(s, email)
    providers = await sso.list_sso_providers(s)

    def fail(message: str, code: int = 401) -> Response:
        return render(state, request, "login.html", status_code=code, error=message,
                      next=safe_next(next), email=email, providers=providers)

    if account is not None and account.locked_until is not None and account.locked_at(now):
        wait = int((account.locked_until - now).total_seconds()) + 1
        await state.record(event_types.AUTH_LOGIN, request=request, actor=email, outcome=Outcome.DENIED,
                           details={"reason": "locked", "retry_after_s": wait})
        return fail(f"too many failed attempts: try again in {wait} s", 429)
    if account is None or account.user.disabled or not verify_password(account.password_hash, password):
        if account is not None:
            await users.record_failed_login(s, account.user.id,
                                            lock_until=lambda failures: state.lockout.locked_until(failures, now))
        await state.record(event_types.AUTH_LOGIN, request=request, actor=email, outcome=Outcome.FAILURE,
                           details={"reason": "bad_credentials"})
        return fail(GENERIC_FAILURE)
    user = account.user
    await users.record_successful_login(s, user.id)
    if account.password_hash and needs_rehash(account.password_hash):
        await users.set_password_hash(s, user.id, hash_password(password))
    needs_mfa = second_factor.mfa_required(user.roles, account.totp_enrolled)
    stage = browser_sessions.STAGE_PASSWORD if needs_mfa else browser_sessions.STAGE_FULL
    token, _ = await browser_sessions.start(s, user_id=user.id, stage=stage, now=now,
                                            source_ip=client_ip(request))
    await state.record(event_types.AUTH_LOGIN, request=request, user=user,
                       details={"stage": stage, "method": "password"})
    target = safe_next(next)
    if needs_mfa:
        target = ("/login/verify" if account.totp_enrolled else "/mfa/enrol") + f"?next={target}"
    response = see_other(target)
    set_session_cookie(state, response, token)
    return response


@router.get("/login/verify")
async def verify_page(request: Request, state: State, login: OptionalLogin, next: str = "") -> Response:
    if login is None:
        return see_other("/login")
    return render(state, request, "verify.html", login=login, next=safe_next(next))


@router.post("/login/verify")
async def verify_submit(
    request: Request, state: State, s: DbSession, login: OptionalLogin, _csrf: CsrfChecked,
    code: Annotated[str, Form()], next: Annotated[str, Form()] = "",
) -> Response:
    if login is None:
        return see_other("/login")
    now = state.clock()
    result = await second_factor.check_code(s, login.user.id, code, now)
    if not result.ok:
        await state.record(event_types.AUTH_MFA, request=request, user=login.user, outcome=Outcome.FAILURE,
                           details={"reason": result.value})
        message = {
            second_factor.FactorResult.REPLAYED: "this code was already used: wait for the next one",
            second_factor.FactorResult.NOT_ENROLLED: "no authenticator is enrolled for this account",
        }.get(result, "the code is wrong or expired")
        return render(state, request, "verify.html", login=login, next=safe_next(next),
                      error=message, status_code=401)
    # a new session id once both factors are done (no fixation of the half-way session)
    await portal_sessions.delete_portal_session(s, login.session.id)
    token, _ = await browser_sessions.start(
        s, user_id=login.user.id, stage=browser_sessions.STAGE_FULL, now=now,
        source_ip=client_ip(request), mfa_method=result.value,
    )
    await state.record(event_types.AUTH_MFA, request=request, user=login.user, details={"method": result.value})
    response = see_other(safe_next(next))
    set_session_cookie(state, response, token)
    return response


@router.post("/logout")
async def logout(request: Request, state: State, s: DbSession, login: CurrentLogin,
                 _csrf: CsrfChecked) -> Response:
    await portal_sessions.delete_portal_session(s, login.session.id)
    ended = await end_all_of(state, s, login.user.id, reason="user signed out", actor=login.user.email)
    await state.record(event_types.AUTH_LOGOUT, request=request, user=login.user,
                       details={"dwa_sessions_ended": ended})
    response = see_other("/login")
    response.delete_cookie(browser_sessions.COOKIE, path="/")
    return response


@router.post("/logout/everywhere")
async def logout_everywhere(request: Request, state: State, s: DbSession, login: CurrentLogin,
                            _csrf: CsrfChecked) -> Response:
    n = await portal_sessions.delete_user_portal_sessions(s, login.user.id)
    ended = await end_all_of(state, s, login.user.id, reason="user signed out everywhere",
                             actor=login.user.email)
    await state.record(event_types.AUTH_LOGOUT_EVERYWHERE, request=request, user=login.user,
                       details={"sessions_ended": n, "dwa_sessions_ended": ended})
    response = see_other("/login")
    response.delete_cookie(browser_sessions.COOKIE, path="/")
    return response
