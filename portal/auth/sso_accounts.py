"""From an IdP's answer to a printgate user: tenant check, group -> role
mapping (synced at every SSO sign-in), just-in-time account creation."""

from __future__ import annotations

import secrets
from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncSession

from portal.auth.saml import SsoIdentity
from portal.errors import SSO_NO_ROLE, SSO_WRONG_TENANT, USER_DISABLED
from printgate.domain import CustomerId, DealerId, Role, User, UserId
from printgate.domain.sso import SsoProvider
from printgate.errors import AuthenticationFailed
from printgate.store import users as users_store
from printgate.store.tenants import add_user


def mapped_roles(provider: SsoProvider, groups: tuple[str, ...]) -> frozenset[Role]:
    roles = {Role(provider.role_map[g]) for g in groups if g in provider.role_map}
    return frozenset(roles or {Role(r) for r in provider.default_roles})


async def account_for(
    s: AsyncSession, provider: SsoProvider, who: SsoIdentity
) -> tuple[User, frozenset[Role], frozenset[Role]]:
    """(user, roles before, roles after). Refuses people of another tenant."""
    roles = mapped_roles(provider, who.groups)
    if not roles:
        raise AuthenticationFailed(
            f"{who.email}: none of the groups {list(who.groups)} maps to a printgate role; "
            "ask your administrator to map one", code=SSO_NO_ROLE)
    found = await users_store.get_user_by_email(s, who.email)
    if found is None:
        user = User(UserId(f"u-{secrets.token_hex(6)}"), who.email, who.email, roles,
                    DealerId(provider.dealer_id) if provider.dealer_id else None,
                    CustomerId(provider.customer_id) if provider.customer_id else None)
        await add_user(s, user)
        await s.flush()
        return user, frozenset(), roles
    if found.dealer_id != provider.dealer_id or found.customer_id != provider.customer_id:
        raise AuthenticationFailed(
            f"{who.email} belongs to another organisation than identity provider {provider.name}",
            code=SSO_WRONG_TENANT)
    if found.disabled:
        raise AuthenticationFailed(f"{who.email} is disabled", code=USER_DISABLED)
    await users_store.set_roles(s, found.id, roles)
    return replace(found, roles=roles), found.roles, roles
