"""From an IdP's answer to a printgate user: tenant check, group -> role
mapping (synced at every SSO sign-in), just-in-time account creation."""

from __future__ import annotations

import secrets

from sqlalchemy.ext.asyncio import AsyncSession

from portal.auth.saml import SsoIdentity
from portal.errors import SSO_NO_ROLE, SSO_WRONG_TENANT, USER_DISABLED
from printgate.domain import CustomerId, DealerId, Role, User, UserId
from printgate.errors import AuthenticationFailed
from printgate.store.models.core import UserRow
from printgate.store.models.identity import SsoProviderRow
from printgate.store.tenants import add_user, get_user_row_by_email


def mapped_roles(provider: SsoProviderRow, groups: tuple[str, ...]) -> frozenset[Role]:
    roles = {Role(provider.role_map[g]) for g in groups if g in provider.role_map}
    return frozenset(roles or {Role(r) for r in provider.default_roles})


async def account_for(
    s: AsyncSession, provider: SsoProviderRow, who: SsoIdentity
) -> tuple[UserRow, frozenset[Role], frozenset[Role]]:
    """(user row, roles before, roles after). Refuses people of another tenant."""
    roles = mapped_roles(provider, who.groups)
    if not roles:
        raise AuthenticationFailed(
            f"{who.email}: none of the groups {list(who.groups)} maps to a printgate role; "
            "ask your administrator to map one", code=SSO_NO_ROLE)
    row = await get_user_row_by_email(s, who.email)
    if row is None:
        user = User(UserId(f"u-{secrets.token_hex(6)}"), who.email, who.email, roles,
                    DealerId(provider.dealer_id) if provider.dealer_id else None,
                    CustomerId(provider.customer_id) if provider.customer_id else None)
        await add_user(s, user)
        await s.flush()
        row = await get_user_row_by_email(s, who.email)
        assert row is not None
        return row, frozenset(), roles
    if row.dealer_id != provider.dealer_id or row.customer_id != provider.customer_id:
        raise AuthenticationFailed(
            f"{who.email} belongs to another organisation than identity provider {provider.name}",
            code=SSO_WRONG_TENANT)
    if row.disabled:
        raise AuthenticationFailed(f"{who.email} is disabled", code=USER_DISABLED)
    before = frozenset(Role(r) for r in row.roles)
    row.roles = sorted(r.value for r in roles)
    return row, before, roles
