"""RBAC pages: users of the admin's organisation, their roles, disabling,
invitations (also used as password-reset links)."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import Response

from portal.auth import api_tokens, browser_sessions
from portal.auth.passwords import hash_password, password_problem
from portal.deps import CsrfChecked, CurrentLogin, DbSession, State
from portal.invitations import CUSTOMER_ROLES, DEALER_ROLES, create_invitation
from portal.pages import render, see_other
from portal.routers.dwa_sessions import end_all_of
from printgate.domain import CustomerId, DealerId, Role, User, UserId, event_types
from printgate.domain.email import normalise_email
from printgate.errors import EmailInvalid
from printgate.store import invitations as invitations_store
from printgate.store import portal_sessions
from printgate.store import users as users_store
from printgate.store.tenants import add_user, get_user, list_customers_of_dealer

router = APIRouter(tags=["users"], include_in_schema=False)  # pages and forms: not the JSON API's description



def assignable_roles(admin: User) -> tuple[Role, ...]:
    """Roles ``admin`` may grant, inside their own organisation only."""
    if Role.DEALER_ADMIN in admin.roles and admin.dealer_id:
        return DEALER_ROLES
    if Role.CUSTOMER_ADMIN in admin.roles and admin.customer_id:
        return CUSTOMER_ROLES
    return ()


def _require_admin(login: CurrentLogin) -> tuple[Role, ...]:
    roles = assignable_roles(login.user)
    if not roles:
        raise HTTPException(403, "only dealer or customer administrators manage users")
    return roles


def _same_org(admin: User, other: User) -> bool:
    if admin.dealer_id:
        return other.dealer_id == admin.dealer_id
    return admin.customer_id is not None and other.customer_id == admin.customer_id


@router.get("/admin/users")
async def users_page(request: Request, state: State, s: DbSession, login: CurrentLogin,
                     invite_link: str = "") -> Response:
    return await _users_page(request, state, s, login)


async def _users_page(request: Request, state: State, s: DbSession, login: CurrentLogin, *,
                      invite_errors: dict[str, str] | None = None, invite_email: str = "",
                      invite_roles: tuple[str, ...] = ()) -> Response:
    """The users page; after a refused invitation with the form as it was sent and each error beside its field."""
    roles = _require_admin(login)
    me = login.user
    users = await users_store.list_users(s, dealer_id=me.dealer_id) if me.dealer_id else \
        await users_store.list_users(s, customer_id=me.customer_id)
    invitations = await invitations_store.list_invitations(s, dealer_id=me.dealer_id, customer_id=me.customer_id)
    customer_names: dict[str, str] = {}
    if me.dealer_id:  # a dealer admin also follows the invitations of the dealer's customers
        for customer in await list_customers_of_dealer(s, me.dealer_id):
            customer_names[customer.id] = customer.name
            invitations += await invitations_store.list_invitations(s, dealer_id=None, customer_id=customer.id)
        invitations.sort(key=lambda i: i.created_at, reverse=True)
    return render(state, request, "users.html", login=login, users=users, assignable=roles,
                  invitations=invitations, customer_names=customer_names, now=state.clock(),
                  invite_errors=invite_errors or {}, invite_email=invite_email, invite_roles=invite_roles,
                  status_code=422 if invite_errors else 200)


@router.post("/admin/users/{user_id}/roles")
async def set_roles(request: Request, state: State, s: DbSession, login: CurrentLogin,
                    _csrf: CsrfChecked, user_id: str,
                    roles: Annotated[list[str] | None, Form()] = None) -> Response:
    allowed = _require_admin(login)
    user = await get_user(s, user_id)
    if user is None or not _same_org(login.user, user):
        raise HTTPException(404, "no such user in your organisation")
    wanted = set(roles or [])
    bad = wanted - {r.value for r in allowed}
    if bad:
        raise HTTPException(422, f"you cannot grant {', '.join(sorted(bad))}")
    if user_id == login.user.id and not (wanted & {Role.DEALER_ADMIN.value, Role.CUSTOMER_ADMIN.value}):
        raise HTTPException(409, "you cannot remove your own administrator role; ask another admin")
    await users_store.set_roles(s, user.id, frozenset(Role(r) for r in wanted))
    await state.record(event_types.RBAC_ROLES_CHANGED, request=request, user=login.user,
                       details={"user": user.id, "from": sorted(r.value for r in user.roles),
                                "to": sorted(wanted)},
                       personal={"subject": user.email})
    return see_other("/admin/users")


@router.post("/admin/users/{user_id}/disable")
async def disable_user(request: Request, state: State, s: DbSession, login: CurrentLogin,
                       _csrf: CsrfChecked, user_id: str,
                       disabled: Annotated[bool, Form()] = True) -> Response:
    _require_admin(login)
    user = await get_user(s, user_id)
    if user is None or not _same_org(login.user, user) or user_id == login.user.id:
        raise HTTPException(404, "no such user in your organisation")
    await users_store.set_disabled(s, user.id, disabled)
    ended = await portal_sessions.delete_user_portal_sessions(s, user_id) if disabled else 0
    if disabled:
        await end_all_of(state, s, user_id, reason="user disabled by an administrator",
                         actor=login.user.email)
    await state.record(event_types.RBAC_USER_DISABLED if disabled else event_types.RBAC_USER_ENABLED, request=request,
                       user=login.user, details={"user": user.id, "sessions_ended": ended},
                       personal={"subject": user.email})
    return see_other("/admin/users")


@router.post("/admin/invitations")
async def invite(request: Request, state: State, s: DbSession, login: CurrentLogin,
                 _csrf: CsrfChecked, email: Annotated[str, Form()],
                 roles: Annotated[list[str] | None, Form()] = None) -> Response:
    allowed = _require_admin(login)
    wanted = sorted(set(roles or []))
    errors: dict[str, str] = {}
    try:
        email = normalise_email(email)  # the one check of the CLI too: what the sign-in form accepts
    except EmailInvalid as exc:
        errors["email"] = exc.message
    if not wanted or set(wanted) - {r.value for r in allowed}:
        errors["roles"] = "choose at least one role you may grant"
    if errors:
        return await _users_page(request, state, s, login, invite_errors=errors, invite_email=email,
                                 invite_roles=tuple(wanted))
    me = login.user
    existing = await users_store.get_user_by_email(s, email)
    note = None
    if existing is not None and _same_org(me, existing):
        # an invitation never changes an existing account's roles (accepting it only sets a new
        # password): refuse rather than let the admin believe the roles were given
        had = sorted(r.value for r in existing.roles)
        if had != wanted:
            raise HTTPException(409, f"{existing.email} has an account already, with the roles {', '.join(had)}: "
                                     "change their roles in the list of users instead (an invitation would only "
                                     "let them choose a new password)")
        note = (f"{existing.email} has an account already (roles {', '.join(had)}): "
                "this link lets them choose a new password")
    invitation = await create_invitation(
        s, email=email, roles=wanted, dealer_id=me.dealer_id,
        customer_id=me.customer_id if not me.dealer_id else None, invited_by=me.email, now=state.clock())
    await state.record(event_types.RBAC_INVITED, request=request, user=me,
                       details={"roles": wanted, "invitation": invitation.id,
                                "revoked_invitations": list(invitation.revoked)}, personal={"subject": email})
    link = invitation.link(state.settings.public_url)
    return render(state, request, "invited.html", login=login, link=link, email=email, note=note)


@router.get("/invite/{token}")
async def invitation_page(request: Request, state: State, s: DbSession, token: str) -> Response:
    row = await invitations_store.find_invitation(s, api_tokens.hash_token(token))
    if row is None or row.accepted_at is not None or row.expires_at <= state.clock():
        return render(state, request, "invite.html", status_code=410,
                      error="this invitation link is unknown, used or expired: ask for a new one")
    return render(state, request, "invite.html", invitation=row, token=token)


@router.post("/invite/{token}")
async def accept_invitation(request: Request, state: State, s: DbSession, _csrf: CsrfChecked,
                            token: str, display_name: Annotated[str, Form()],
                            password: Annotated[str, Form()]) -> Response:
    row = await invitations_store.find_invitation(s, api_tokens.hash_token(token))
    now = state.clock()
    if row is None or row.accepted_at is not None or row.expires_at <= now:
        return render(state, request, "invite.html", status_code=410,
                      error="this invitation link is unknown, used or expired: ask for a new one")
    problem = password_problem(password)
    if problem:
        return render(state, request, "invite.html", status_code=422, error=problem, invitation=row,
                      token=token)
    existing = await users_store.get_user_by_email(s, row.email)
    if existing is not None:
        if existing.dealer_id != row.dealer_id or existing.customer_id != row.customer_id:
            raise HTTPException(409, "this e-mail belongs to another organisation")
        await users_store.reset_password(s, existing.id, hash_password(password))  # a password reset
        await portal_sessions.delete_user_portal_sessions(s, existing.id)
        kind = event_types.AUTH_PASSWORD_RESET
    else:
        user = User(UserId(f"u-{secrets.token_hex(6)}"), row.email, display_name.strip() or row.email,
                    frozenset(Role(r) for r in row.roles),
                    DealerId(row.dealer_id) if row.dealer_id else None,
                    CustomerId(row.customer_id) if row.customer_id else None)
        await add_user(s, user, password_hash=hash_password(password))
        kind = event_types.RBAC_INVITATION_ACCEPTED
    await invitations_store.mark_accepted(s, row.id, now)
    await state.record(kind, request=request, actor=row.email, dealer_id=row.dealer_id,
                       customer_id=row.customer_id, details={"invitation": row.id})
    response = see_other("/login?password_set=1")  # the sign-in page says the password is set
    response.delete_cookie(browser_sessions.COOKIE, path="/")
    return response


@router.post("/admin/users/{user_id}/reset-link")
async def reset_link(request: Request, state: State, s: DbSession, login: CurrentLogin,
                     _csrf: CsrfChecked, user_id: str) -> Response:
    """A one-use link letting the user choose a new password (an invitation for an existing account)."""
    _require_admin(login)
    user = await get_user(s, user_id)
    if user is None or not _same_org(login.user, user):
        raise HTTPException(404, "no such user in your organisation")
    invitation = await create_invitation(
        s, email=user.email, roles=[r.value for r in user.roles], dealer_id=user.dealer_id,
        customer_id=user.customer_id, invited_by=login.user.email, now=state.clock(),
        ttl=timedelta(hours=24))
    await state.record(event_types.AUTH_PASSWORD_RESET_LINK, request=request, user=login.user,
                       details={"user": user.id, "invitation": invitation.id,
                                "revoked_invitations": list(invitation.revoked)}, personal={"subject": user.email})
    link = invitation.link(state.settings.public_url)
    return render(state, request, "invited.html", login=login, link=link, email=user.email)
