"""Agent channel repository: enrolment tokens, agent certificates, processed batches.

Lives in the store layer so the portal (which cannot import the gateway) can
mint enrolment tokens and revoke agents.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.domain import AgentCertificate, AgentId, SiteId
from printgate.errors import NotFound, TokenInvalid
from printgate.store.models.channel import AgentCertificateRow, EnrolmentTokenRow, ProcessedBatchRow
from printgate.store.models.core import AgentRow, SiteRow

TOKEN_PREFIX = "pgenrol_"
MAX_TOKEN_TTL = timedelta(hours=24)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


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
    token = TOKEN_PREFIX + secrets.token_urlsafe(24)
    at = _now(now)
    s.add(EnrolmentTokenRow(
        token_hash=hash_token(token), site_id=site_id, created_by=created_by,
        created_at=at, expires_at=at + ttl,
    ))
    await s.flush()
    return token


async def redeem_enrolment_token(
    s: AsyncSession, token: str, *, agent_id: str, now: datetime | None = None
) -> SiteId:
    """Consume ``token`` atomically for ``agent_id``; the site it was minted for.

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
        .values(used_at=at, used_by_agent=agent_id)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise TokenInvalid(
            "enrolment token is unknown, expired or already used: ask an admin for a new one"
        )
    site = (await s.execute(
        select(EnrolmentTokenRow.site_id).where(EnrolmentTokenRow.token_hash == digest)
    )).scalar_one()
    return SiteId(site)


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

    Re-enrolment needs a new token. Returns how many certificates were revoked.
    """
    at = _now(now)
    result = await s.execute(
        update(AgentCertificateRow)
        .where(AgentCertificateRow.agent_id == agent_id, AgentCertificateRow.revoked_at.is_(None))
        .values(revoked_at=at, revoked_reason=reason[:200])
    )
    await s.execute(update(AgentRow).where(AgentRow.id == agent_id).values(revoked=True, online=False))
    return int(result.rowcount)  # type: ignore[attr-defined]


async def revoked_serials(s: AsyncSession) -> set[str]:
    rows = await s.execute(
        select(AgentCertificateRow.serial).where(AgentCertificateRow.revoked_at.is_not(None))
    )
    return set(rows.scalars().all())


async def mark_batch_processed(
    s: AsyncSession, agent_id: str, batch_id: str, *, now: datetime | None = None
) -> bool:
    """Record the batch; False if it had been processed before (idempotency)."""
    if await s.get(ProcessedBatchRow, (agent_id, batch_id)) is not None:
        return False
    try:
        async with s.begin_nested():
            s.add(ProcessedBatchRow(agent_id=agent_id, batch_id=batch_id, processed_at=_now(now)))
    except IntegrityError:
        return False
    return True


async def batch_processed(s: AsyncSession, agent_id: str, batch_id: str) -> bool:
    return await s.get(ProcessedBatchRow, (agent_id, batch_id)) is not None
