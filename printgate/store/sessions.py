"""DWA sessions and their transitions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.domain import (
    Agent,
    AgentId,
    Customer,
    Device,
    DeviceAlert,
    DeviceId,
    DwaSession,
    DwaState,
    DwaTarget,
    DwaTransition,
    PrinterAlert,
    Reason,
    ReasonKind,
    SessionId,
    SessionReason,
    Site,
    User,
    UserId,
)
from printgate.store import approvals, fleet, outbox, rule_sets, tenants
from printgate.store.devices import get_device
from printgate.store.models.core import DeviceRow, DwaSessionRow, DwaTransitionRow
from printgate.store.models.readings import DeviceAlertRow


async def save_session(s: AsyncSession, session: DwaSession, *, node_id: str | None = None) -> None:
    """Insert or update the session row and append transitions not yet stored. ``node_id``: the
    gateway node that owns a new session (issue 18); an existing row keeps its owner."""
    row = await s.get(DwaSessionRow, session.id)
    if row is None:
        row = DwaSessionRow(
            id=session.id, user_id=session.user_id, device_id=session.device_id, node_id=node_id,
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


async def live_session_ids(s: AsyncSession, *, owners: Sequence[str] | None = None,
                           unowned: bool = False, created_before: datetime | None = None) -> list[str]:
    """Sessions not yet ended. ``owners``: only those owned by these nodes (issue 18), plus, with
    ``unowned``, those with no owner (opened before 0022); None: all. ``created_before``: only
    those opened before that time."""
    finals = [DwaState.CLOSED.value, DwaState.DENIED.value, DwaState.FAILED.value]
    q = select(DwaSessionRow.id).where(DwaSessionRow.state.not_in(finals))
    if created_before is not None:
        q = q.where(DwaSessionRow.created_at < created_before)
    if owners is not None:
        mine = DwaSessionRow.node_id.in_(list(owners)) if owners else false()
        q = q.where(or_(mine, DwaSessionRow.node_id.is_(None)) if unowned else mine)
    result = await s.execute(q.order_by(DwaSessionRow.created_at, DwaSessionRow.id))
    return list(result.scalars().all())


async def owner_of(s: AsyncSession, session_id: str) -> str | None:
    """The node owning the session (None: unknown session or opened before 0022)."""
    return (await s.execute(select(DwaSessionRow.node_id).where(DwaSessionRow.id == session_id))).scalar_one_or_none()


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
    description, raised); None when the device has no such open alert (another device's is never
    taken, nor a cleared one: ``alert_reason_or_refusal`` says which)."""
    found = await alert_reason_or_refusal(s, device_id, alert_id)
    return found if isinstance(found, SessionReason) else None


async def alert_reason_or_refusal(s: AsyncSession, device_id: str, alert_id: int | None) -> SessionReason | Reason:
    """The open alert ``alert_id`` of ``device_id`` as a session reason, or why it cannot be one:
    ``reason.alert_unknown`` (not this device's, or no such alert) or ``reason.alert_cleared``."""
    row = await s.get(DeviceAlertRow, int(alert_id)) if alert_id is not None and 0 <= alert_id < 2**63 else None
    if row is None or row.device_id != device_id:
        return Reason("reason.alert_unknown",
                      f"alert {alert_id} is not an alert of this device: open the web page from the device's "
                      "own alert list, or give a ticket or a written reason")
    if row.cleared_at is not None:
        what = row.description or row.code or "printer alert"
        return Reason("reason.alert_cleared",
                      f"this alert ('{what}') cleared at {row.cleared_at:%Y-%m-%d %H:%M} UTC; "
                      "open with a ticket or a written reason")
    return SessionReason.of_alert(row.id, code=row.code, severity=row.severity, description=row.description,
                                  raised_at=row.raised_at)


@dataclass(frozen=True, slots=True)
class AccessFacts:
    """What the policy needs to decide "open web page" for a user and a device, from the store: ONE
    gathering for the gateway's broker, the portal's test broker and ``policy explain`` / the policy
    page's preview, so they decide alike (issue 20). ``reason_refusal``: the reason named cannot be
    the session's (another device's or a cleared alert): the open is refused before the policy."""

    device: Device
    customer: Customer
    site: Site
    agent: Agent | None
    ruleset: dict[str, Any] | None
    approved_until: datetime | None
    open_alerts: tuple[DeviceAlert, ...]
    reason: SessionReason | None
    reason_refusal: Reason | None
    user_live_sessions: int
    device_live_sessions: int


async def gather_access_facts(s: AsyncSession, user: User, device_id: str, now: datetime, *,
                              reason: SessionReason | None = None, resolve_reason: bool = True) -> AccessFacts | None:
    """None when there is no such device (or it has no customer). ``resolve_reason``: an alert
    reason given by id is taken from the store (refused when not the device's own open alert);
    False keeps ``reason`` as it is (a live session's, whose alert may have cleared since)."""
    device = await get_device(s, device_id)
    tenancy = await tenants.tenant_of_site(s, device.site_id) if device is not None else None
    if device is None or tenancy is None:
        return None
    customer, site = tenancy
    refusal: Reason | None = None
    if resolve_reason and reason is not None and reason.kind is ReasonKind.ALERT:
        found = await alert_reason_or_refusal(s, device.id, reason.alert_id)
        reason, refusal = (found, None) if isinstance(found, SessionReason) else (None, found)
    return AccessFacts(
        device=device, customer=customer, site=site, agent=await tenants.get_agent(s, device.agent_id),
        ruleset=await rule_sets.load_ruleset(s, customer.dealer_id),
        approved_until=await approvals.active_approval_until(s, user.id, device.id, now),
        open_alerts=tuple(await fleet.open_alerts(s, device.id)), reason=reason, reason_refusal=refusal,
        user_live_sessions=await count_live_dwa_sessions(s, user_id=user.id),
        device_live_sessions=await count_live_dwa_sessions(s, device_id=device.id),
    )


async def openable_alerts(s: AsyncSession, device_ids: Sequence[str], *, per_device: int = 10) -> dict[str, list[DeviceAlert]]:
    """The open alerts a session can be opened for, per device (most severe, then oldest first; at
    most ``per_device`` each): the fleet overview's and the Devices page's one-click actions."""
    if not device_ids:
        return {}
    rows = (await s.scalars(select(DeviceAlertRow).where(
        DeviceAlertRow.device_id.in_(device_ids), DeviceAlertRow.cleared_at.is_(None)))).all()
    found: dict[str, list[DeviceAlert]] = {}
    for row in sorted(rows, key=lambda r: (-_RANK.get(r.severity, 0), r.raised_at, r.id)):
        mine = found.setdefault(row.device_id, [])
        if len(mine) < per_device:
            mine.append(DeviceAlert(
                id=row.id, device_id=DeviceId(row.device_id),
                alert=PrinterAlert(row.alert_index, row.severity, row.group, row.code, row.description,
                                   row.training_level),
                raised_at=row.raised_at, last_seen_at=row.last_seen_at, cleared_at=row.cleared_at))
    return found


_RANK = {"critical": 3, "warning": 2, "warningBinaryChangeEvent": 2}


async def live_session_ids_at(s: AsyncSession, *, site_ids: list[str]) -> list[str]:
    """Live sessions on devices of these sites (e.g. to end them when access becomes ``never``)."""
    if not site_ids:
        return []
    result = await s.execute(
        select(DwaSessionRow.id).join(DeviceRow, DeviceRow.id == DwaSessionRow.device_id)
        .where(DeviceRow.site_id.in_(site_ids), DwaSessionRow.state.not_in(["closed", "denied", "failed"])))
    return list(result.scalars().all())


async def alerts_cleared_at(s: AsyncSession, alert_ids: list[int]) -> dict[int, datetime]:
    """Of ``alert_ids``, those cleared, with when (a later readings batch no longer had them)."""
    if not alert_ids:
        return {}
    rows = await s.execute(select(DeviceAlertRow.id, DeviceAlertRow.cleared_at).where(
        DeviceAlertRow.id.in_(alert_ids), DeviceAlertRow.cleared_at.is_not(None)))
    return {int(i): at for i, at in rows.tuples().all() if at is not None}
