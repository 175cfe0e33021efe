"""One-use invitation links: a new account (or a password reset for an existing one)
chooses its password at ``/invite/<token>``. Used by the users page and by
``printgate admin`` (the first dealer administrator has nobody to invite them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from portal.auth import api_tokens
from printgate.domain import Role
from printgate.store import invitations

DEALER_ROLES = (Role.DEALER_ADMIN, Role.TECHNICIAN, Role.VIEWER, Role.AUDITOR)
CUSTOMER_ROLES = (Role.CUSTOMER_ADMIN, Role.VIEWER, Role.AUDITOR)
INVITATION_TTL = timedelta(days=3)


@dataclass(frozen=True, slots=True)
class Invitation:
    """A stored invitation and its link (the token is shown once, only its hash is kept)."""

    id: str
    token: str
    expires_at: datetime
    revoked: tuple[str, ...] = ()  # the same person's earlier unused links, revoked by this one

    def link(self, public_url: str) -> str:
        return f"{public_url.rstrip('/')}/invite/{self.token}"


def roles_problem(roles: set[str], *, for_dealer: bool) -> str | None:
    """Why ``roles`` cannot be granted in a dealer (or a customer) organisation, or None."""
    allowed = {r.value for r in (DEALER_ROLES if for_dealer else CUSTOMER_ROLES)}
    if not roles:
        return "choose at least one role"
    bad = roles - allowed
    if bad:
        where = "a dealer's" if for_dealer else "a customer's"
        return (f"{', '.join(sorted(bad))} cannot be granted to {where} users; "
                f"choose from {', '.join(sorted(allowed))}")
    return None


async def create_invitation(
    s: AsyncSession, *, email: str, roles: list[str], dealer_id: str | None, customer_id: str | None,
    invited_by: str, now: datetime, ttl: timedelta = INVITATION_TTL,
) -> Invitation:
    """A new one-use link for ``email``; the person's earlier unused links stop working (only the
    newest link may set the password: an older one left in a mailbox must not overwrite it)."""
    revoked = await invitations.revoke_open_invitations(s, email, now)
    token_id, token, token_hash = api_tokens.new_token()
    await invitations.add_invitation(
        s, invitation_id=token_id, token_hash=token_hash, email=email.strip().lower(),
        roles=sorted(set(roles)), dealer_id=dealer_id, customer_id=customer_id, invited_by=invited_by,
        created_at=now, expires_at=now + ttl)
    return Invitation(token_id, token, now + ttl, tuple(revoked))
