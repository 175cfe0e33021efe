"""The transactional outbox and webhook deliveries (docs/integrations.md).

A change that the outside world should hear of (an alert opens or clears, a session opens,
ends or asks for approval) calls ``enqueue_outbound`` with the SAME ``AsyncSession`` that
writes the change: the event exists exactly when the change was committed. The dispatcher
(``integrations.dispatcher``) fans each event out to one delivery per matching enabled
endpoint of the event's dealer (adding ``data.context``, the device's names, once), and
delivers those at least once with a stable event id.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.domain import DwaSession, DwaState, DwaTransition
from printgate.errors import NotFound
from printgate.store.models.core import CustomerRow, DeviceRow, SiteRow
from printgate.store.models.outbox import OutboxEventRow, WebhookDeliveryRow, WebhookEndpointRow

ALERT_OPENED = "alert.opened"
ALERT_CLEARED = "alert.cleared"
SESSION_OPENED = "session.opened"
SESSION_ENDED = "session.ended"
SESSION_APPROVAL_REQUESTED = "session.approval_requested"
EVENT_KINDS: tuple[str, ...] = (ALERT_OPENED, ALERT_CLEARED, SESSION_OPENED, SESSION_ENDED,
                                SESSION_APPROVAL_REQUESTED)

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
MAX_PAYLOAD_BYTES = 64 * 1024


def _now() -> datetime:
    return datetime.now(UTC)


def _json_value(value: object) -> str:
    """Datetimes as ISO 8601 (UTC with ``Z``), anything else as its text."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(value)


def new_event_id() -> str:
    return "evt_" + secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class OutboundEvent:
    id: str
    kind: str
    dealer_id: str
    customer_id: str | None
    site_id: str | None
    device_id: str | None
    payload: Mapping[str, Any]
    created_at: datetime

    def body(self) -> bytes:
        """The webhook body: the same bytes for every attempt (sorted keys, compact)."""
        return json.dumps({
            "id": self.id, "type": self.kind,
            "created_at": self.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "dealer_id": self.dealer_id, "customer_id": self.customer_id, "site_id": self.site_id,
            "device_id": self.device_id, "data": dict(self.payload),
        }, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _event(row: OutboxEventRow) -> OutboundEvent:
    return OutboundEvent(row.id, row.kind, row.dealer_id, row.customer_id, row.site_id, row.device_id,
                         dict(row.payload or {}), row.created_at)


async def enqueue_outbound(s: AsyncSession, *, kind: str, dealer_id: str, customer_id: str | None,
                           site_id: str | None, device_id: str | None, payload: Mapping[str, Any],
                           now: datetime | None = None) -> str:
    """Add one event to the outbox in the caller's transaction; return its id."""
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown outbound event kind {kind!r}; one of {', '.join(EVENT_KINDS)}")
    data = json.loads(json.dumps(dict(payload), default=_json_value))  # JSON-safe now, not at delivery
    if len(json.dumps(data)) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"outbound event payload over {MAX_PAYLOAD_BYTES} bytes")
    event_id = new_event_id()
    s.add(OutboxEventRow(id=event_id, kind=kind, dealer_id=dealer_id, customer_id=customer_id,
                         site_id=site_id, device_id=device_id, payload=data,
                         created_at=now or _now()))
    return event_id


async def enqueue_for_device(s: AsyncSession, *, kind: str, device_id: str, payload: Mapping[str, Any],
                             now: datetime | None = None) -> str | None:
    """``enqueue_outbound`` with the device's site, customer and dealer looked up (None: no such device)."""
    row = (await s.execute(
        select(SiteRow.id, CustomerRow.id, CustomerRow.dealer_id)
        .join(DeviceRow, DeviceRow.site_id == SiteRow.id)
        .join(CustomerRow, CustomerRow.id == SiteRow.customer_id)
        .where(DeviceRow.id == device_id)
    )).first()
    if row is None:
        return None
    site_id, customer_id, dealer_id = row
    return await enqueue_outbound(s, kind=kind, dealer_id=dealer_id, customer_id=customer_id,
                                  site_id=site_id, device_id=device_id, payload=payload, now=now)


async def device_contexts(s: AsyncSession, device_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """What a ticket shows about each device (customer, site and device names, model, serial,
    address, location), one query; unknown devices are left out."""
    if not device_ids:
        return {}
    rows = await s.execute(
        select(DeviceRow.id, SiteRow.name, CustomerRow.name, DeviceRow.name, DeviceRow.model, DeviceRow.serial,
               DeviceRow.ip, DeviceRow.location)
        .join(SiteRow, SiteRow.id == DeviceRow.site_id)
        .join(CustomerRow, CustomerRow.id == SiteRow.customer_id)
        .where(DeviceRow.id.in_(sorted(set(device_ids)))))
    return {device_id: {"customer_name": customer, "site_name": site, "device_name": name or None,
                        "model": model, "serial": serial, "ip": ip, "location": location}
            for device_id, site, customer, name, model, serial, ip, location in rows.all()}


async def enqueue_session_changes(s: AsyncSession, session: DwaSession,
                                  new: Sequence[DwaTransition]) -> None:
    """``session.opened`` when ``new`` makes the session active, ``session.ended`` when it ends one
    that was active (a refused or failed opening is no session a ticket needs to hear of)."""
    was_active = any(t.state == DwaState.ACTIVE for t in session.history)
    for t in new:
        if t.state == DwaState.ACTIVE:
            kind = SESSION_OPENED
        elif t.state.is_final and was_active:
            kind = SESSION_ENDED
        else:
            continue
        payload: dict[str, Any] = {
            "session_id": session.id, "user_id": session.user_id, "state": t.state.value,
            "at": t.at.isoformat(), "opened_at": session.created_at.isoformat(),
            "expires_at": session.expires_at.isoformat(),
            "reason": session.reason.to_dict() if session.reason is not None else None,
        }
        if kind == SESSION_ENDED:
            payload["end_reason"] = t.reason
            payload["duration_seconds"] = int((t.at - session.created_at).total_seconds())
        await enqueue_for_device(s, kind=kind, device_id=session.device_id, payload=payload, now=t.at)


# --- endpoints --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    id: str
    dealer_id: str
    url: str
    description: str
    kinds: tuple[str, ...]  # empty: every kind
    enabled: bool
    created_at: datetime
    created_by: str | None

    def wants(self, kind: str) -> bool:
        return not self.kinds or kind in self.kinds


@dataclass(frozen=True, slots=True)
class SealedSecret:
    sealed: bytes
    kms_key_id: str


def _endpoint(row: WebhookEndpointRow) -> WebhookEndpoint:
    return WebhookEndpoint(row.id, row.dealer_id, row.url, row.description, tuple(row.kinds or ()),
                           row.enabled, row.created_at, row.created_by)


def new_endpoint_id() -> str:
    return "whe_" + secrets.token_hex(8)


def secret_context(endpoint_id: str, dealer_id: str) -> bytes:
    """What a sealed endpoint secret is bound to (AES-GCM associated data)."""
    return f"printgate-webhook-secret:{dealer_id}:{endpoint_id}".encode()


async def add_endpoint(s: AsyncSession, *, endpoint_id: str, dealer_id: str, url: str, description: str,
                       kinds: Sequence[str], secret: SealedSecret, by: str | None,
                       now: datetime | None = None) -> WebhookEndpoint:
    unknown = sorted(set(kinds) - set(EVENT_KINDS))
    if unknown:
        raise ValueError(f"unknown event kinds {', '.join(unknown)}")
    at = now or _now()
    row = WebhookEndpointRow(id=endpoint_id, dealer_id=dealer_id, url=url, description=description[:200],
                             kinds=sorted(set(kinds)), secret_sealed=secret.sealed,
                             kms_key_id=secret.kms_key_id, enabled=True, created_at=at,
                             created_by=by, changed_at=at)
    s.add(row)
    await s.flush()
    return _endpoint(row)


async def list_endpoints(s: AsyncSession, dealer_id: str) -> list[WebhookEndpoint]:
    rows = await s.scalars(select(WebhookEndpointRow).where(WebhookEndpointRow.dealer_id == dealer_id)
                           .order_by(WebhookEndpointRow.created_at, WebhookEndpointRow.id))
    return [_endpoint(r) for r in rows]


async def get_endpoint(s: AsyncSession, dealer_id: str, endpoint_id: str) -> WebhookEndpoint:
    """The dealer's endpoint, or ``NotFound`` (also for another dealer's id)."""
    row = await s.get(WebhookEndpointRow, endpoint_id)
    if row is None or row.dealer_id != dealer_id:
        raise NotFound(f"webhook endpoint {endpoint_id} not found")
    return _endpoint(row)


async def endpoint_secret(s: AsyncSession, endpoint_id: str) -> SealedSecret:
    row = await s.get(WebhookEndpointRow, endpoint_id)
    if row is None:
        raise NotFound(f"webhook endpoint {endpoint_id} not found")
    return SealedSecret(row.secret_sealed, row.kms_key_id)


async def set_endpoint_enabled(s: AsyncSession, dealer_id: str, endpoint_id: str, *, enabled: bool,
                               now: datetime | None = None) -> WebhookEndpoint:
    row = await s.get(WebhookEndpointRow, endpoint_id)
    if row is None or row.dealer_id != dealer_id:
        raise NotFound(f"webhook endpoint {endpoint_id} not found")
    row.enabled, row.changed_at = enabled, now or _now()
    await s.flush()
    return _endpoint(row)


# --- the dispatcher's side --------------------------------------------------------------------


async def fan_out(s: AsyncSession, *, now: datetime | None = None, limit: int = 500) -> int:
    """Make one pending delivery per (new event, enabled endpoint of its dealer that wants its
    kind); mark the events fanned out. Returns the number of deliveries made."""
    at = now or _now()
    events = list(await s.scalars(select(OutboxEventRow).where(OutboxEventRow.fanned_out_at.is_(None))
                                  .order_by(OutboxEventRow.seq).limit(limit)
                                  .with_for_update(skip_locked=True)))
    if not events:
        return 0
    # the names a ticket shows, added once here (not in the change's transaction) and stored:
    # every attempt sends the same body
    contexts = await device_contexts(s, [e.device_id for e in events
                                         if e.device_id and "context" not in (e.payload or {})])
    for e in events:
        if e.device_id in contexts and "context" not in (e.payload or {}):
            e.payload = {**(e.payload or {}), "context": contexts[e.device_id]}
    dealers = {e.dealer_id for e in events}
    endpoints = [_endpoint(r) for r in await s.scalars(
        select(WebhookEndpointRow).where(WebhookEndpointRow.dealer_id.in_(dealers),
                                         WebhookEndpointRow.enabled.is_(True)))]
    made = 0
    for e in events:
        for ep in endpoints:
            if ep.dealer_id == e.dealer_id and ep.wants(e.kind):
                s.add(WebhookDeliveryRow(event_id=e.id, endpoint_id=ep.id, dealer_id=e.dealer_id,
                                         status=PENDING, attempts=0, next_attempt_at=at, last_error=""))
                made += 1
        e.fanned_out_at = at
    await s.flush()
    return made


@dataclass(frozen=True, slots=True)
class DueDelivery:
    delivery_id: int
    endpoint_id: str
    dealer_id: str
    url: str
    secret: SealedSecret
    attempts: int  # made before this one
    event: OutboundEvent


async def due_endpoints(s: AsyncSession, *, now: datetime | None = None) -> list[str]:
    """Enabled endpoints with a pending delivery now due, the longest-waiting first."""
    at = now or _now()
    rows = await s.execute(
        select(WebhookDeliveryRow.endpoint_id, func.min(WebhookDeliveryRow.next_attempt_at).label("due"))
        .join(WebhookEndpointRow, WebhookEndpointRow.id == WebhookDeliveryRow.endpoint_id)
        .where(WebhookDeliveryRow.status == PENDING, WebhookDeliveryRow.next_attempt_at <= at,
               WebhookEndpointRow.enabled.is_(True))
        .group_by(WebhookDeliveryRow.endpoint_id).order_by("due"))
    return [r[0] for r in rows.all()]


async def due_endpoint_owners(s: AsyncSession, *, now: datetime | None = None) -> list[tuple[str, str]]:
    """``(endpoint id, dealer id)`` of enabled endpoints with a pending delivery now due, the
    longest-waiting first (the dispatcher schedules fairly between dealers with it)."""
    at = now or _now()
    rows = await s.execute(
        select(WebhookDeliveryRow.endpoint_id, WebhookEndpointRow.dealer_id,
               func.min(WebhookDeliveryRow.next_attempt_at).label("due"))
        .join(WebhookEndpointRow, WebhookEndpointRow.id == WebhookDeliveryRow.endpoint_id)
        .where(WebhookDeliveryRow.status == PENDING, WebhookDeliveryRow.next_attempt_at <= at,
               WebhookEndpointRow.enabled.is_(True))
        .group_by(WebhookDeliveryRow.endpoint_id, WebhookEndpointRow.dealer_id).order_by("due"))
    return [(r[0], r[1]) for r in rows.all()]


async def claim_due(s: AsyncSession, *, now: datetime | None = None, limit: int = 100,
                    lease_seconds: float = 30.0, endpoint_id: str | None = None) -> list[DueDelivery]:
    """Pending deliveries now due (oldest first), leased for ``lease_seconds`` so another
    dispatcher (or this one after a crash) takes them only once the lease ran out."""
    at = now or _now()
    q = (select(WebhookDeliveryRow, OutboxEventRow, WebhookEndpointRow)
         .join(OutboxEventRow, OutboxEventRow.id == WebhookDeliveryRow.event_id)
         .join(WebhookEndpointRow, WebhookEndpointRow.id == WebhookDeliveryRow.endpoint_id)
         .where(WebhookDeliveryRow.status == PENDING, WebhookDeliveryRow.next_attempt_at <= at,
                WebhookEndpointRow.enabled.is_(True))
         .order_by(WebhookDeliveryRow.next_attempt_at, WebhookDeliveryRow.id).limit(limit)
         .with_for_update(of=WebhookDeliveryRow, skip_locked=True))
    if endpoint_id is not None:
        q = q.where(WebhookDeliveryRow.endpoint_id == endpoint_id)
    out: list[DueDelivery] = []
    lease = at + timedelta(seconds=lease_seconds)
    for d, e, ep in (await s.execute(q)).all():
        d.next_attempt_at = lease
        out.append(DueDelivery(d.id, ep.id, ep.dealer_id, ep.url, SealedSecret(ep.secret_sealed, ep.kms_key_id),
                               d.attempts, _event(e)))
    await s.flush()
    return out


async def record_attempt(s: AsyncSession, delivery_id: int, *, ok: bool, status: int | None, error: str,
                         retry_at: datetime | None, now: datetime | None = None) -> str:
    """Store one attempt's outcome: delivered, pending again at ``retry_at``, or dead (``retry_at``
    None and not ok). Returns the new status."""
    at = now or _now()
    row = await s.get(WebhookDeliveryRow, delivery_id)
    if row is None:
        raise NotFound(f"webhook delivery {delivery_id} not found")
    row.attempts += 1
    row.last_attempt_at, row.last_status, row.last_error = at, status, error[:300]
    if ok:
        row.status, row.delivered_at = DELIVERED, at
    elif retry_at is not None:
        row.status, row.next_attempt_at = PENDING, retry_at
    else:
        row.status = DEAD
    await s.flush()
    return row.status


async def next_due_at(s: AsyncSession) -> datetime | None:
    return (await s.execute(select(func.min(WebhookDeliveryRow.next_attempt_at))
                            .where(WebhookDeliveryRow.status == PENDING))).scalar()


# --- the portal's dead-letter view ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeliveryView:
    id: int
    endpoint_id: str
    url: str
    event_id: str
    kind: str
    status: str
    attempts: int
    last_status: int | None
    last_error: str
    last_attempt_at: datetime | None
    created_at: datetime


async def deliveries_of_dealer(s: AsyncSession, dealer_id: str, *, status: str | None = None,
                               limit: int = 100, delivery_id: int | None = None) -> list[DeliveryView]:
    q = (select(WebhookDeliveryRow, OutboxEventRow.kind, OutboxEventRow.created_at, WebhookEndpointRow.url)
         .join(OutboxEventRow, OutboxEventRow.id == WebhookDeliveryRow.event_id)
         .join(WebhookEndpointRow, WebhookEndpointRow.id == WebhookDeliveryRow.endpoint_id)
         .where(WebhookDeliveryRow.dealer_id == dealer_id)
         .order_by(WebhookDeliveryRow.id.desc()).limit(limit))
    if status is not None:
        q = q.where(WebhookDeliveryRow.status == status)
    if delivery_id is not None:
        q = q.where(WebhookDeliveryRow.id == delivery_id)
    return [DeliveryView(d.id, d.endpoint_id, url, d.event_id, kind, d.status, d.attempts, d.last_status,
                         d.last_error, d.last_attempt_at, created)
            for d, kind, created, url in (await s.execute(q)).all()]


async def redeliver(s: AsyncSession, dealer_id: str, delivery_id: int, *,
                    now: datetime | None = None) -> DeliveryView:
    """A dead letter of the dealer pending again now, with a fresh attempt budget (same event id)."""
    row = await s.get(WebhookDeliveryRow, delivery_id)
    if row is None or row.dealer_id != dealer_id:
        raise NotFound(f"webhook delivery {delivery_id} not found")
    if row.status != DEAD:
        raise NotFound(f"webhook delivery {delivery_id} is {row.status}, not a dead letter")
    row.status, row.attempts, row.next_attempt_at = PENDING, 0, now or _now()
    await s.flush()
    return (await deliveries_of_dealer(s, dealer_id, delivery_id=delivery_id))[0]


async def prune(s: AsyncSession, *, before: datetime) -> int:
    """Forget delivered deliveries and fanned-out events older than ``before`` (dead letters stay)."""
    old = select(OutboxEventRow.id).where(OutboxEventRow.fanned_out_at.is_not(None),
                                          OutboxEventRow.created_at < before)
    await s.execute(delete(WebhookDeliveryRow).where(WebhookDeliveryRow.status == DELIVERED,
                                                     WebhookDeliveryRow.event_id.in_(old)))
    kept = select(WebhookDeliveryRow.event_id)
    result = await s.execute(delete(OutboxEventRow).where(OutboxEventRow.id.in_(old),
                                                          OutboxEventRow.id.not_in(kept)))
    return int(getattr(result, "rowcount", 0) or 0)

