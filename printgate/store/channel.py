"""Agent channel repository: enrolment tokens, agent certificates, processed batches.

Lives in the store layer so the portal (which cannot import the gateway) can
mint enrolment tokens and revoke agents.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.domain import AgentCertificate, AgentId, SiteId
from printgate.errors import NotFound, TokenInvalid
from printgate.store.models.channel import (
    AgentCertificateRow,
    AgentRekeyGrantRow,
    EnrolmentTokenRow,
)
from printgate.store.models.core import AgentRow, DwaSessionRow, SiteRow
from printgate.token_digest import token_digest

TOKEN_PREFIX = "pgenrol_"
TOKEN_ID_LEN = 16  # hex characters right after the prefix, then "_" and the secret
MAX_TOKEN_TTL = timedelta(hours=24)
MAX_REKEY_TTL = timedelta(hours=24)


hash_token = token_digest  # the core's one token digest


def token_id_of(token: str) -> str | None:
    """The non-secret id of a ``pgenrol_<16 hex id>_<secret>`` token (None for any other shape)."""
    rest = token[len(TOKEN_PREFIX):] if token.startswith(TOKEN_PREFIX) else ""
    token_id = rest[:TOKEN_ID_LEN]
    if len(rest) <= TOKEN_ID_LEN + 1 or rest[TOKEN_ID_LEN] != "_":
        return None
    return token_id if all(c in "0123456789abcdef" for c in token_id) else None


async def token_id_known(s: AsyncSession, token_id: str) -> bool:
    """Whether a token with this id was ever minted (used and expired ones included)."""
    found = await s.execute(select(EnrolmentTokenRow.token_hash).where(EnrolmentTokenRow.token_id == token_id))
    return found.first() is not None


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


async def create_enrolment_token(
    s: AsyncSession, site_id: str, *, ttl: timedelta, created_by: str, now: datetime | None = None
) -> str:
    """A new one-time token for ``site_id`` (returned once; only its hash is stored)."""
    if ttl <= timedelta(0) or ttl > MAX_TOKEN_TTL:
        raise ValueError(f"enrolment token lifetime must be between 0 and {MAX_TOKEN_TTL}")
    if await s.get(SiteRow, site_id) is None:
        raise NotFound(f"site {site_id} does not exist: create the site before an enrolment token")
    token_id = secrets.token_hex(TOKEN_ID_LEN // 2)
    token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(24)}"
    at = _now(now)
    s.add(EnrolmentTokenRow(
        token_hash=hash_token(token), site_id=site_id, created_by=created_by,
        created_at=at, expires_at=at + ttl, token_id=token_id,
    ))
    await s.flush()
    return token


async def redeem_enrolment_token(
    s: AsyncSession, token: str, *, agent_id: str, now: datetime | None = None,
    key_sha256: str | None = None,
) -> SiteId:
    """Consume ``token`` atomically for ``agent_id`` (and the key ``key_sha256``, so a retry
    can be recognised: ``used_enrolment_token``); the site it was minted for.

    Unknown, expired and already used tokens all raise ``TokenInvalid`` with the
    same message (no oracle for which one it was).
    """
    at = _now(now)
    digest = hash_token(token)
    result = await s.execute(
        update(EnrolmentTokenRow)
        .where(
            EnrolmentTokenRow.token_hash == digest,
            EnrolmentTokenRow.used_at.is_(None),
            EnrolmentTokenRow.expires_at > at,
        )
        .values(used_at=at, used_by_agent=agent_id, used_key_sha256=key_sha256)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise TokenInvalid(
            "enrolment token is unknown, expired or already used: ask an admin for a new one"
        )
    site = (await s.execute(
        select(EnrolmentTokenRow.site_id).where(EnrolmentTokenRow.token_hash == digest)
    )).scalar_one()
    return SiteId(site)


@dataclass(frozen=True, slots=True)
class UsedEnrolment:
    """An enrolment token already redeemed, still within its validity."""

    site_id: SiteId
    agent_id: AgentId
    same_key: bool  # redeemed for the key the caller presents now


async def used_enrolment_token(
    s: AsyncSession, token: str, *, key_sha256: str, now: datetime | None = None
) -> UsedEnrolment | None:
    """The redemption of ``token`` if it was used and has not expired yet (None otherwise).

    Only the holder of the whole token gets here (the lookup is by its hash), so telling
    it whether its key matches is no oracle for a guesser.
    """
    row = (await s.execute(select(EnrolmentTokenRow).where(
        EnrolmentTokenRow.token_hash == hash_token(token),
        EnrolmentTokenRow.used_at.is_not(None),
        EnrolmentTokenRow.expires_at > _now(now),
    ))).scalar_one_or_none()
    if row is None or row.used_by_agent is None:
        return None
    return UsedEnrolment(SiteId(row.site_id), AgentId(row.used_by_agent),
                         same_key=row.used_key_sha256 is not None
                         and secrets.compare_digest(row.used_key_sha256, key_sha256))


def _cert(row: AgentCertificateRow) -> AgentCertificate:
    return AgentCertificate(
        serial=row.serial, agent_id=AgentId(row.agent_id), site_id=SiteId(row.site_id),
        fingerprint=row.fingerprint, not_before=row.not_before, not_after=row.not_after,
        revoked_at=row.revoked_at, revoked_reason=row.revoked_reason,
    )


async def ensure_agent(s: AsyncSession, agent_id: str, site_id: str, *, name: str) -> None:
    """Create the agent row if it does not exist yet."""
    if await s.get(AgentRow, agent_id) is None:
        s.add(AgentRow(id=agent_id, site_id=site_id, name=name, online=False, revoked=False))
        await s.flush()


async def record_certificate(s: AsyncSession, cert: AgentCertificate) -> None:
    s.add(AgentCertificateRow(
        serial=cert.serial, agent_id=cert.agent_id, site_id=cert.site_id,
        fingerprint=cert.fingerprint, not_before=cert.not_before, not_after=cert.not_after,
    ))
    await s.flush()


async def get_certificate(s: AsyncSession, serial: str) -> AgentCertificate | None:
    row = await s.get(AgentCertificateRow, serial)
    return _cert(row) if row else None


async def certificates_of(s: AsyncSession, agent_id: str) -> list[AgentCertificate]:
    rows = (await s.execute(
        select(AgentCertificateRow).where(AgentCertificateRow.agent_id == agent_id)
        .order_by(AgentCertificateRow.not_before)
    )).scalars().all()
    return [_cert(r) for r in rows]


async def revoke_agent(
    s: AsyncSession, agent_id: str, *, reason: str, now: datetime | None = None
) -> int:
    """Revoke every certificate of ``agent_id`` and mark the agent revoked.

    The agent row is updated first: that takes the row lock a concurrent
    renewal holds (``reserve_agent_for_issue``), so a certificate issued by a
    renewal that committed first is seen, and revoked, by the second statement,
    and a renewal that comes later finds the agent revoked. Re-enrolment needs
    a new token. Returns how many certificates were revoked.
    """
    at = _now(now)
    await s.execute(update(AgentRow).where(AgentRow.id == agent_id).values(revoked=True, online=False))
    result = await s.execute(
        update(AgentCertificateRow)
        .where(AgentCertificateRow.agent_id == agent_id, AgentCertificateRow.revoked_at.is_(None))
        .values(revoked_at=at, revoked_reason=reason[:200])
    )
    await s.execute(delete(AgentRekeyGrantRow).where(AgentRekeyGrantRow.agent_id == agent_id))
    return int(result.rowcount)  # type: ignore[attr-defined]


async def reserve_agent_for_issue(s: AsyncSession, agent_id: str) -> bool:
    """Lock the agent's row for issuing it a certificate in this transaction; False if it is
    revoked or unknown.

    A conditional UPDATE, the first statement of the transaction: PostgreSQL holds the row
    lock until commit (a concurrent ``revoke_agent`` waits, then revokes the new
    certificate too; a renewal waiting behind a revocation re-reads ``revoked`` and gets 0
    rows); SQLite takes the database write lock, which serialises the same way.
    """
    result = await s.execute(
        update(AgentRow).where(AgentRow.id == agent_id, AgentRow.revoked.is_(False)).values(revoked=False)
    )
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


async def certificate_standing(
    s: AsyncSession, serial: str, *, agent_id: str, site_id: str, now: datetime | None = None
) -> str | None:
    """Why the certificate ``serial`` presented for ``agent_id``@``site_id`` may not be used
    now (a reason code), or None when it is a current certificate of an enrolled, unrevoked
    agent of that site."""
    row = (await s.execute(
        select(AgentCertificateRow, AgentRow)
        .join(AgentRow, AgentRow.id == AgentCertificateRow.agent_id, isouter=True)
        .where(AgentCertificateRow.serial == serial)
    )).first()
    if row is None:
        return "certificate_unknown"
    cert, agent = row
    if cert.agent_id != agent_id or cert.site_id != site_id:
        return "certificate_mismatch"
    if agent is None:
        return "agent_unknown"
    if agent.revoked:
        return "agent_revoked"
    if cert.revoked_at is not None:
        return "certificate_revoked"
    if agent.site_id != site_id:
        return "site_mismatch"
    if cert.not_after <= _now(now):
        return "certificate_expired"
    return None


async def agent_standing(s: AsyncSession, agent_id: str) -> str | None:
    """Why ``agent_id`` may not act now (a reason code), or None when it is enrolled and unrevoked."""
    agent = await s.get(AgentRow, agent_id)
    if agent is None:
        return "agent_unknown"
    return "agent_revoked" if agent.revoked else None


async def revoked_agents(s: AsyncSession) -> set[str]:
    rows = await s.execute(select(AgentRow.id).where(AgentRow.revoked.is_(True)))
    return set(rows.scalars().all())


async def foreign_sessions(s: AsyncSession, agent_id: str, session_ids: set[str]) -> set[str]:
    """Those of ``session_ids`` that are not sessions of ``agent_id`` (unknown ones included)."""
    if not session_ids:
        return set()
    own = await s.execute(
        select(DwaSessionRow.id).where(DwaSessionRow.id.in_(list(session_ids)), DwaSessionRow.agent_id == agent_id)
    )
    return session_ids - set(own.scalars().all())


async def grant_rekey(
    s: AsyncSession, agent_id: str, *, granted_by: str, ttl: timedelta = timedelta(hours=1),
    now: datetime | None = None,
) -> datetime:
    """Let ``agent_id`` renew its certificate once for a new key within ``ttl``; the expiry."""
    if ttl <= timedelta(0) or ttl > MAX_REKEY_TTL:
        raise ValueError(f"a re-key permission lasts between 0 and {MAX_REKEY_TTL}")
    agent = await s.get(AgentRow, agent_id)
    if agent is None:
        raise NotFound(f"agent {agent_id} does not exist: check the id on the agents page")
    if agent.revoked:
        raise NotFound(f"agent {agent_id} is revoked: enrol the host again with a new token")
    at = _now(now)
    await s.execute(delete(AgentRekeyGrantRow).where(AgentRekeyGrantRow.agent_id == agent_id))
    s.add(AgentRekeyGrantRow(agent_id=agent_id, granted_by=granted_by[:320], granted_at=at,
                             expires_at=at + ttl))
    await s.flush()
    return at + ttl


async def take_rekey_grant(s: AsyncSession, agent_id: str, *, now: datetime | None = None) -> str | None:
    """Consume ``agent_id``'s unexpired re-key permission; who granted it, or None."""
    at = _now(now)
    row = await s.get(AgentRekeyGrantRow, agent_id)
    if row is None:
        return None
    await s.delete(row)
    await s.flush()
    return row.granted_by if row.expires_at > at else None


async def revoked_serials(s: AsyncSession, *, valid_at: datetime | None = None) -> set[str]:
    """Serials of revoked certificates (only those not yet expired at ``valid_at``, if given:
    what a CRL must list)."""
    q = select(AgentCertificateRow.serial).where(AgentCertificateRow.revoked_at.is_not(None))
    if valid_at is not None:
        q = q.where(AgentCertificateRow.not_after > valid_at)
    rows = await s.execute(q)
    return set(rows.scalars().all())


async def mark_all_offline(s: AsyncSession, *, except_held_by_live_nodes_other_than: str | None = None) -> list[str]:
    """Agents a previous cloud process left marked online (it died without saying goodbye): set them
    offline until they reconnect; returns their ids. ``except_held_by_live_nodes_other_than`` (this
    node's id, several gateway nodes): agents whose stream another node with a live lease holds
    are online there and stay so (issue 18)."""
    q = select(AgentRow.id).where(AgentRow.online.is_(True))
    if except_held_by_live_nodes_other_than is not None:
        from printgate.store.models.nodes import AgentStreamRow, GatewayNodeRow

        held = (select(AgentStreamRow.agent_id).join(GatewayNodeRow, GatewayNodeRow.id == AgentStreamRow.node_id)
                .where(GatewayNodeRow.id != except_held_by_live_nodes_other_than,
                       GatewayNodeRow.state.in_(("active", "draining")),
                       GatewayNodeRow.lease_expires_at > datetime.now(UTC)))
        q = q.where(AgentRow.id.not_in(held))
    ids = list((await s.execute(q)).scalars())
    if ids:
        await s.execute(update(AgentRow).where(AgentRow.id.in_(ids)).values(online=False))
    return ids
