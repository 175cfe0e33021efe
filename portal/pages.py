"""Rendering helpers shared by the HTML routers (template + CSRF + user)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from portal.auth import csrf
from portal.state import Login, PortalState
from printgate.domain import Role, User

DEVICE_ROLES = frozenset({Role.DEALER_ADMIN, Role.TECHNICIAN, Role.VIEWER})
ROLE_NAMES = {
    Role.DEALER_ADMIN: "dealer administrator",
    Role.TECHNICIAN: "technician",
    Role.VIEWER: "viewer",
    Role.AUDITOR: "auditor",
    Role.CUSTOMER_ADMIN: "customer administrator",
}


def role_name(role: Role | str) -> str:
    """A role in words ("dealer administrator"), as people read it on pages and refusals."""
    try:
        return ROLE_NAMES[Role(role)]
    except ValueError:
        return str(role).replace("_", " ")


def render(state: PortalState, request: Request, template: str, *, login: Login | None = None,
           status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render ``template``; forms get a CSRF token bound to the session (or a
    fresh pre-session cookie when nobody is signed in)."""
    pre: str | None = None
    if login is not None:
        token = login.csrf_token
    else:
        pre = request.cookies.get(csrf.PRE_COOKIE) or csrf.new_binding()
        token = csrf.token_for(state.secret_key, pre)
    response = state.templates.TemplateResponse(
        request, template,
        {"login": login, "user": login.user if login else None, "csrf_token": token, "role_name": role_name,
         **context},
        status_code=status_code,
    )
    if pre is not None and request.cookies.get(csrf.PRE_COOKIE) != pre:
        response.set_cookie(csrf.PRE_COOKIE, pre, httponly=True, samesite="lax",
                            secure=state.settings.cookie_secure, path="/")
    return response


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def safe_next(url: str | None, default: str = "/devices") -> str:
    """Only local paths are accepted as a post-login target (no open redirect)."""
    if url and url.startswith("/") and not url.startswith("//") and "\\" not in url:
        return url
    return default


def landing_page(user: User | None) -> str:
    """Where ``/`` and a fresh sign-in lead: auditors (who have no devices page)
    land on the audit log, everyone else on their devices."""
    if user is not None and Role.AUDITOR in user.roles and not user.roles & DEVICE_ROLES:
        return "/audit"
    return "/devices"
