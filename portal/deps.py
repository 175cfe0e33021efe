"""FastAPI dependencies for every portal router (also those of other areas).

- ``DbSession``: an ``AsyncSession`` in a transaction committed after the handler.
- ``CurrentUser``: the signed-in ``printgate.domain.User`` (browser session with
  both factors done, or ``Authorization: Bearer pgt_...`` API token); otherwise
  401 (API) or a redirect to /login (HTML pages).
- ``require_role(*roles)``: a dependency refusing (403) users without one of ``roles``.
- ``CsrfChecked``: verifies the ``csrf_token`` form field of a POST.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Annotated

from fastapi import Depends, Form, HTTPException, Request, status
from sqlalchemy.ext.asyncio import AsyncSession

from portal.auth import api_tokens, browser_sessions, csrf
from portal.state import PENDING_AUDIT, AfterCommit, Login, PortalState, portal_state
from printgate.domain import Role, User
from printgate.store import api_tokens as api_tokens_store
from printgate.store import portal_sessions
from printgate.store.tenants import get_user

State = Annotated[PortalState, Depends(portal_state)]


async def _db_session(state: State) -> AsyncIterator[AsyncSession]:
    pending: list[AfterCommit] = []
    token = PENDING_AUDIT.set(pending)
    try:
        async with state.db.transaction() as s:
            yield s
    finally:
        PENDING_AUDIT.reset(token)
        await state.flush_pending(pending)  # audited whether the transaction committed or not


DbSession = Annotated[AsyncSession, Depends(_db_session, scope="function")]


class LoginRequired(Exception):
    """Raised for HTML pages without a session; turned into a redirect to /login."""

    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "") and not request.url.path.startswith("/api/")


async def _optional_login(request: Request, state: State, s: DbSession) -> Login | None:
    now = state.clock()
    row = await browser_sessions.load(s, request.cookies.get(browser_sessions.COOKIE), now,
                                      state.timeouts)
    if row is None:
        return None
    user = await get_user(s, row.user_id)
    if user is None or user.disabled:
        return None
    await portal_sessions.touch_portal_session(s, row.id, now)
    login = Login(user, replace(row, last_seen_at=now), csrf.token_for(state.secret_key, row.csrf_secret))
    request.state.login = login  # for login_of: one session lookup per request
    return login


OptionalLogin = Annotated[Login | None, Depends(_optional_login)]


async def _full_login(request: Request, login: OptionalLogin) -> Login:
    if login is None or login.session.stage != browser_sessions.STAGE_FULL:
        if _wants_html(request):
            raise LoginRequired(str(request.url.path))
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "sign in first",
                            headers={"WWW-Authenticate": "Bearer"})
    return login


CurrentLogin = Annotated[Login, Depends(_full_login)]


async def _current_user(request: Request, state: State, s: DbSession,
                        login: OptionalLogin) -> User:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        token = auth[7:].strip()
        found = await api_tokens_store.find_api_token(s, api_tokens.hash_token(token))
        now = state.clock()
        if found is None or not found.usable(now):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "API token invalid, expired or revoked",
                                headers={"WWW-Authenticate": "Bearer"})
        user = await get_user(s, found.user_id)
        if user is None or user.disabled:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "API token owner is disabled")
        await api_tokens_store.mark_api_token_used(s, found.id, now)
        request.state.token_scopes = frozenset(found.scopes)
        return user
    full = await _full_login(request, login)
    return full.user


CurrentUser = Annotated[User, Depends(_current_user)]


def require_role(*roles: Role) -> Callable[..., Awaitable[User]]:
    """Dependency: the current user if they hold one of ``roles``, else 403."""
    wanted = frozenset(roles)

    async def check(user: CurrentUser) -> User:
        if not (user.roles & wanted):
            from portal.pages import role_name

            names = " or ".join(sorted(role_name(r) for r in wanted))
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this needs the {names} role")
        return user

    return check


def require_scope(scope: str) -> Callable[..., Awaitable[None]]:
    """Dependency: API tokens must carry ``scope`` (browser sessions pass)."""

    async def check(request: Request, user: CurrentUser) -> None:
        scopes = getattr(request.state, "token_scopes", None)
        if scopes is not None and scope not in scopes:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"API token lacks scope {scope}")

    return check


async def _csrf_checked(request: Request, state: State, login: OptionalLogin,
                        csrf_token: Annotated[str, Form()] = "") -> None:
    session_binding = login.session.csrf_secret if login else None
    pre_binding = request.cookies.get(csrf.PRE_COOKIE)
    if not (csrf.check(state.secret_key, session_binding, csrf_token)
            or csrf.check(state.secret_key, pre_binding, csrf_token)):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "form expired or forged (CSRF check failed): reload the page and retry")


CsrfChecked = Annotated[None, Depends(_csrf_checked)]


async def login_of(request: Request) -> Login | None:
    """The signed-in browser session of ``request`` for pages whose access another
    dependency already checks (the audit pages: header and CSRF token); ``None``
    when signed out or when the router is mounted outside the portal app."""
    state: PortalState | None = getattr(request.app.state, "portal", None)
    if state is None:
        return None
    known: Login | None = getattr(request.state, "login", None)
    if known is not None:  # already looked up (and touched) by this request's dependencies
        return known
    async with state.db.session() as s:
        return await _optional_login(request, state, s)
