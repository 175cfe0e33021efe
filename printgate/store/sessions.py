"""DWA sessions and their transitions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.domain import (
    AgentId,
    DeviceId,
    DwaSession,
    DwaState,
    DwaTarget,
    DwaTransition,
    SessionId,
    SessionReason,
    UserId,
)
from printgate.store import outbox
from printgate.store.models.core import DwaSessionRow, DwaTransitionRow
from printgate.store.models.readings import DeviceAlertRow


async def save_session(s: AsyncSession, session: DwaSession) -> None:
    """Insert or update the session row and append transitions not yet stored."""
    row = await s.get(DwaSessionRow, session.id)
    if row is None:
        row = DwaSessionRow(
            id=session.id, user_id=session.user_id, device_id=session.device_id,
            agent_id=session.agent_id, target_ip=session.target.ip,
            target_port=session.target.port, target_scheme=session.target.scheme,
            created_at=session.created_at, state=session.state.value,
            expires_at=session.expires_at,
            reason=session.reason.to_dict() if session.reason is not None else None,
        )
        s.add(row)
        stored = 0
    else:
        stored = len((await s.execute(
            select(DwaTransitionRow.id).where(DwaTransitionRow.session_id == session.id)
        )).all())
    row.state = session.state.value
    row.expires_at = session.expires_at
    row.ended_at = session.ended_at
    for t in session.history[stored:]:
        s.add(DwaTransitionRow(session_id=session.id, state=t.state.value, at=t.at, reason=t.reason))
    await outbox.enqueue_session_changes(s, session, session.history[stored:])  # same transaction


async def load_session(s: AsyncSession, session_id: str) -> DwaSession | None:
    row = await s.get(DwaSessionRow, session_id)
    if row is None:
        return None
    transitions = (await s.execute(
        select(DwaTransitionRow).where(DwaTransitionRow.session_id == session_id)
        .order_by(DwaTransitionRow.id)
    )).scalars().all()
    return DwaSession(
        id=SessionId(row.id), user_id=UserId(row.user_id), device_id=DeviceId(row.device_id),
        agent_id=AgentId(row.agent_id),
        target=DwaTarget(row.target_ip, row.target_port, row.target_scheme),
        created_at=row.created_at, expires_at=row.expires_at, state=DwaState(row.state),
        ended_at=row.ended_at,
        history=tuple(DwaTransition(DwaState(t.state), t.at, t.reason) for t in transitions),
        reason=reason_of(row.reason),
    )


def reason_of(stored: dict[str, object] | None) -> SessionReason | None:
    """The session's reason as stored (0018); None for sessions opened before it or unreadable ones."""
    if not stored:
        return None
    try:
        return SessionReason.from_dict(dict(stored))
    except (KeyError, ValueError, TypeError):
        return None


async def live_session_ids(s: AsyncSession) -> list[str]:
    finals = [DwaState.CLOSED.value, DwaState.DENIED.value, DwaState.FAILED.value]
    result = await s.execute(select(DwaSessionRow.id).where(DwaSessionRow.state.not_in(finals)))
    return list(result.scalars().all())


async def count_live_dwa_sessions(s: AsyncSession, *, user_id: str | None = None,
                                  device_id: str | None = None) -> int:
    q = select(func.count()).select_from(DwaSessionRow).where(
        DwaSessionRow.state.not_in(["closed", "denied", "failed"]))
    if user_id is not None:
        q = q.where(DwaSessionRow.user_id == user_id)
    if device_id is not None:
        q = q.where(DwaSessionRow.device_id == device_id)
    return int((await s.execute(q)).scalar_one())


async def live_dwa_session_ids_of_user(s: AsyncSession, user_id: str) -> list[str]:
    result = await s.execute(
        select(DwaSessionRow.id).where(DwaSessionRow.user_id == user_id,
                                       DwaSessionRow.state.not_in(["closed", "denied", "failed"]))
        .order_by(DwaSessionRow.created_at.desc())
    )
    return list(result.scalars().all())


async def alert_reason(s: AsyncSession, device_id: str, alert_id: int | None) -> SessionReason | None:
    """The alert ``alert_id`` of ``device_id`` as a session reason (as stored now: code, severity,
    description, raised); None when the device has no such alert (another device's is never taken)."""
    if alert_id is None:
        return None
    row = await s.get(DeviceAlertRow, int(alert_id))
    if row is None or row.device_id != device_id:
        return None
    return SessionReason.of_alert(row.id, code=row.code, severity=row.severity, description=row.description,
                                  raised_at=row.raised_at)


async def alerts_cleared_at(s: AsyncSession, alert_ids: list[int]) -> dict[int, datetime]:
    """Of ``alert_ids``, those cleared, with when (a later readings batch no longer had them)."""
    if not alert_ids:
        return {}
    rows = await s.execute(select(DeviceAlertRow.id, DeviceAlertRow.cleared_at).where(
        DeviceAlertRow.id.in_(alert_ids), DeviceAlertRow.cleared_at.is_not(None)))
    return {int(i): at for i, at in rows.tuples().all() if at is not None}
