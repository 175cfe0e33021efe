"""Security alerting in the store: subscriptions per tenant, alerts raised, their deliveries
and the follower's cursor. Returns frozen records, never rows.

Routing: a customer's subscription matches alerts about that customer only; a dealer's
(``customer_id`` None) alerts about the dealer or any of its customers; alerts about no
tenant (platform) match no subscription here: they go to the operators' targets from the
settings (the follower adds those deliveries).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.errors import NotFound
from printgate.store.models.security_alerts import (
    SecurityAlertCursorRow,
    SecurityAlertDeliveryRow,
    SecurityAlertRow,
    SecuritySubscriptionRow,
)

CHANNELS = ("email", "webhook", "syslog")
PENDING, SENT, DEAD = "pending", "sent", "dead"


@dataclass(frozen=True, slots=True)
class SecuritySubscription:
    id: str
    dealer_id: str
    customer_id: str | None
    contact: str
    channel: str
    target: str
    secret: str | None
    categories: tuple[str, ...]  # empty: every category
    min_severity: int
    enabled: bool
    created_at: datetime
    created_by: str | None

    def wants(self, category: str, severity: int) -> bool:
        return self.enabled and severity >= self.min_severity and (not self.categories or category in self.categories)


@dataclass(frozen=True, slots=True)
class StoredAlert:
    id: str
    rule: str
    category: str
    severity: int
    kind: str
    title: str
    text: str
    dealer_id: str | None
    customer_id: str | None
    subject: str
    count: int
    first_seq: int
    last_seq: int
    first_at: datetime
    last_at: datetime
    payload: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DueAlertDelivery:
    id: int
    alert_id: str
    subscription_id: str | None
    channel: str
    target: str
    attempts: int
    payload: str  # the alert's JSON


@dataclass(frozen=True, slots=True)
class DeliveryState:
    id: int
    alert_id: str
    channel: str
    target: str
    status: str
    attempts: int
    last_error: str | None


def _sub(row: SecuritySubscriptionRow) -> SecuritySubscription:
    return SecuritySubscription(
        id=row.id, dealer_id=row.dealer_id, customer_id=row.customer_id, contact=row.contact,
        channel=row.channel, target=row.target, secret=row.secret,
        categories=tuple(c for c in row.categories.split(",") if c), min_severity=row.min_severity,
        enabled=row.enabled, created_at=row.created_at, created_by=row.created_by,
    )


def _alert(row: SecurityAlertRow) -> StoredAlert:
    return StoredAlert(
        id=row.id, rule=row.rule, category=row.category, severity=row.severity, kind=row.kind,
        title=row.title, text=row.text, dealer_id=row.dealer_id, customer_id=row.customer_id,
        subject=row.subject, count=row.count, first_seq=int(row.first_seq), last_seq=int(row.last_seq),
        first_at=row.first_at, last_at=row.last_at, payload=row.payload, created_at=row.created_at,
    )


# -- subscriptions ---------------------------------------------------------------------
async def add_subscription(
    s: AsyncSession, *, dealer_id: str, customer_id: str | None, contact: str, channel: str, target: str,
    secret: str | None, categories: tuple[str, ...], min_severity: int, now: datetime, created_by: str | None,
) -> SecuritySubscription:
    """Store a subscription (the caller validated it: ``alerting.subscriptions.validate``)."""
    row = SecuritySubscriptionRow(
        id=uuid.uuid4().hex[:16], dealer_id=dealer_id, customer_id=customer_id, contact=contact[:200],
        channel=channel, target=target[:512], secret=secret, categories=",".join(categories),
        min_severity=min_severity, enabled=True, created_at=now, created_by=created_by,
    )
    s.add(row)
    await s.flush()
    return _sub(row)


async def count_subscriptions(s: AsyncSession, *, dealer_id: str, customer_id: str | None) -> int:
    """How many subscriptions one tenant has: the dealer's own (``customer_id`` None) or one
    customer's (the cap ``[security_alerts] max_subscriptions_per_tenant`` is checked with it)."""
    q = select(func.count()).select_from(SecuritySubscriptionRow).where(
        SecuritySubscriptionRow.dealer_id == dealer_id,
        SecuritySubscriptionRow.customer_id.is_(None) if customer_id is None
        else SecuritySubscriptionRow.customer_id == customer_id)
    return int((await s.execute(q)).scalar_one())


async def get_subscription(s: AsyncSession, subscription_id: str) -> SecuritySubscription | None:
    row = await s.get(SecuritySubscriptionRow, subscription_id)
    return _sub(row) if row is not None else None


async def list_subscriptions(s: AsyncSession, *, dealer_id: str | None = None,
                             customer_id: str | None = None, only_customer_scope: bool = False,
                             ) -> list[SecuritySubscription]:
    """A dealer's subscriptions (its own and its customers'), or one customer's."""
    q = select(SecuritySubscriptionRow).order_by(SecuritySubscriptionRow.created_at, SecuritySubscriptionRow.id)
    if dealer_id is not None:
        q = q.where(SecuritySubscriptionRow.dealer_id == dealer_id)
    if customer_id is not None or only_customer_scope:
        q = q.where(SecuritySubscriptionRow.customer_id == customer_id)
    return [_sub(r) for r in (await s.scalars(q)).all()]


async def set_enabled(s: AsyncSession, subscription_id: str, enabled: bool) -> SecuritySubscription:
    row = await s.get(SecuritySubscriptionRow, subscription_id)
    if row is None:
        raise NotFound(f"no security-alert subscription {subscription_id!r}")
    row.enabled = enabled
    await s.flush()
    return _sub(row)


async def delete_subscription(s: AsyncSession, subscription_id: str) -> SecuritySubscription:
    row = await s.get(SecuritySubscriptionRow, subscription_id)
    if row is None:
        raise NotFound(f"no security-alert subscription {subscription_id!r}")
    gone = _sub(row)
    await s.delete(row)
    await s.flush()
    return gone


async def matching_subscriptions(s: AsyncSession, *, dealer_id: str | None, customer_id: str | None,
                                 category: str, severity: int) -> list[SecuritySubscription]:
    """The enabled subscriptions an alert about (dealer, customer) goes to."""
    if dealer_id is None:
        return []
    rows = (await s.scalars(select(SecuritySubscriptionRow).where(
        SecuritySubscriptionRow.dealer_id == dealer_id, SecuritySubscriptionRow.enabled.is_(True),
    ))).all()
    out = []
    for sub in map(_sub, rows):
        if sub.customer_id is not None and sub.customer_id != customer_id:
            continue  # a customer's contact hears only of that customer
        if sub.wants(category, severity):
            out.append(sub)
    return out


# -- alerts and deliveries -------------------------------------------------------------
async def insert_alert(s: AsyncSession, values: dict[str, Any], *, now: datetime) -> bool:
    """Store an alert unless its id is stored already (a replayed batch); True if new."""
    if await s.get(SecurityAlertRow, values["id"]) is not None:
        return False
    s.add(SecurityAlertRow(**values, created_at=now))
    await s.flush()
    return True


async def add_delivery(s: AsyncSession, *, alert_id: str, subscription_id: str | None, channel: str,
                       target: str, now: datetime) -> None:
    s.add(SecurityAlertDeliveryRow(alert_id=alert_id, subscription_id=subscription_id, channel=channel,
                                   target=target[:512], status=PENDING, attempts=0, next_at=now))
    await s.flush()


@dataclass(frozen=True, slots=True)
class DueTarget:
    """A (channel, target) with pending deliveries due, whose subscription it is (dealer and
    customer; ``None``: an operator target or a dealer-wide one), and how long its oldest has waited."""

    channel: str
    target: str
    dealer_id: str | None
    customer_id: str | None
    oldest: datetime


async def due_targets(s: AsyncSession, *, now: datetime, limit: int = 2000) -> list[DueTarget]:
    """The targets with deliveries due, longest-waiting first (the follower picks among them fairly
    between dealers: one dealer's many dead targets cannot crowd another's out of a fixed batch)."""
    oldest = func.min(SecurityAlertDeliveryRow.next_at)
    rows = (await s.execute(
        select(SecurityAlertDeliveryRow.channel, SecurityAlertDeliveryRow.target,
               func.min(SecuritySubscriptionRow.dealer_id), func.min(SecuritySubscriptionRow.customer_id), oldest)
        .outerjoin(SecuritySubscriptionRow, SecuritySubscriptionRow.id == SecurityAlertDeliveryRow.subscription_id)
        .where(SecurityAlertDeliveryRow.status == PENDING, SecurityAlertDeliveryRow.next_at <= now)
        .group_by(SecurityAlertDeliveryRow.channel, SecurityAlertDeliveryRow.target)
        .order_by(oldest).limit(limit)
    )).all()
    return [DueTarget(channel, target, dealer, customer, at) for channel, target, dealer, customer, at in rows]


async def due_deliveries_to(s: AsyncSession, *, now: datetime, channel: str, target: str,
                            limit: int = 20) -> list[DueAlertDelivery]:
    """One target's due deliveries, oldest first."""
    rows = (await s.execute(
        select(SecurityAlertDeliveryRow, SecurityAlertRow.payload)
        .join(SecurityAlertRow, SecurityAlertRow.id == SecurityAlertDeliveryRow.alert_id)
        .where(SecurityAlertDeliveryRow.status == PENDING, SecurityAlertDeliveryRow.next_at <= now,
               SecurityAlertDeliveryRow.channel == channel, SecurityAlertDeliveryRow.target == target)
        .order_by(SecurityAlertDeliveryRow.next_at, SecurityAlertDeliveryRow.id).limit(limit)
    )).all()
    return [DueAlertDelivery(d.id, d.alert_id, d.subscription_id, d.channel, d.target, d.attempts, payload)
            for d, payload in rows]


async def mark_sent(s: AsyncSession, delivery_id: int, *, now: datetime) -> None:
    await s.execute(update(SecurityAlertDeliveryRow).where(SecurityAlertDeliveryRow.id == delivery_id)
                    .values(status=SENT, sent_at=now, attempts=SecurityAlertDeliveryRow.attempts + 1,
                            last_error=None))


async def mark_failed(s: AsyncSession, delivery_id: int, *, error: str, next_at: datetime, dead: bool) -> None:
    await s.execute(update(SecurityAlertDeliveryRow).where(SecurityAlertDeliveryRow.id == delivery_id)
                    .values(status=DEAD if dead else PENDING, next_at=next_at, last_error=error[:500],
                            attempts=SecurityAlertDeliveryRow.attempts + 1))


async def deliveries_of(s: AsyncSession, alert_id: str) -> list[DeliveryState]:
    rows = (await s.scalars(select(SecurityAlertDeliveryRow).where(SecurityAlertDeliveryRow.alert_id == alert_id)
                            .order_by(SecurityAlertDeliveryRow.id))).all()
    return [DeliveryState(r.id, r.alert_id, r.channel, r.target, r.status, r.attempts, r.last_error) for r in rows]


async def recent_alerts(s: AsyncSession, *, dealer_id: str | None = None, customer_id: str | None = None,
                        platform: bool = False, limit: int = 100) -> list[StoredAlert]:
    """Newest first, within one scope: a customer's, a dealer's (with its customers'), or the
    platform's (``platform=True``: alerts about no tenant)."""
    q = select(SecurityAlertRow).order_by(SecurityAlertRow.created_at.desc(), SecurityAlertRow.last_seq.desc())
    if customer_id is not None:
        q = q.where(SecurityAlertRow.customer_id == customer_id)
    elif dealer_id is not None:
        q = q.where(SecurityAlertRow.dealer_id == dealer_id)
    elif platform:
        q = q.where(SecurityAlertRow.dealer_id.is_(None), SecurityAlertRow.customer_id.is_(None))
    else:
        raise ValueError("recent_alerts needs a scope")
    return [_alert(r) for r in (await s.scalars(q.limit(limit))).all()]


async def count_alerts(s: AsyncSession) -> int:
    return int(await s.scalar(select(func.count()).select_from(SecurityAlertRow)) or 0)


# -- the follower's cursor -------------------------------------------------------------
async def load_cursor(s: AsyncSession, name: str) -> tuple[int, dict[str, Any] | None] | None:
    """(last seq read, engine state) or None when the follower never ran."""
    row = await s.get(SecurityAlertCursorRow, name)
    if row is None:
        return None
    return int(row.last_seq), json.loads(row.state) if row.state else None


async def save_cursor(s: AsyncSession, name: str, *, last_seq: int, state: dict[str, Any], now: datetime) -> None:
    row = await s.get(SecurityAlertCursorRow, name)
    text = json.dumps(state, separators=(",", ":"))
    if row is None:
        s.add(SecurityAlertCursorRow(name=name, last_seq=last_seq, state=text, updated_at=now))
    else:
        row.last_seq, row.state, row.updated_at = last_seq, text, now
    await s.flush()


# -- whose record is it ----------------------------------------------------------------
async def dealer_of_customer(s: AsyncSession, customer_id: str) -> str | None:
    from printgate.store.models.core import CustomerRow

    return await s.scalar(select(CustomerRow.dealer_id).where(CustomerRow.id == customer_id))


async def tenant_of(s: AsyncSession, *, email: str | None = None, agent_id: str | None = None,
                    device_id: str | None = None, session_id: str | None = None,
                    ) -> tuple[str | None, str | None]:
    """(dealer, customer) a record is about when it names no tenant itself: a known account,
    an agent, a device or a DWA session; (None, None) when none is known."""
    from printgate.store.models.core import (  # local: the core tables
        AgentRow,
        CustomerRow,
        DeviceRow,
        DwaSessionRow,
        SiteRow,
        UserRow,
    )

    if email:
        row = (await s.execute(select(UserRow.dealer_id, UserRow.customer_id)
                               .where(func.lower(UserRow.email) == email.strip().lower()))).first()
        if row is not None and (row[0] or row[1]):
            if row[0] is None and row[1] is not None:
                customer = await s.get(CustomerRow, row[1])
                return (customer.dealer_id if customer else None), row[1]
            return row[0], row[1]
    site_id = None
    if session_id and not device_id:
        device_id = await s.scalar(select(DwaSessionRow.device_id).where(DwaSessionRow.id == session_id))
    if device_id:
        site_id = await s.scalar(select(DeviceRow.site_id).where(DeviceRow.id == device_id))
    if site_id is None and agent_id:
        site_id = await s.scalar(select(AgentRow.site_id).where(AgentRow.id == agent_id))
    if site_id is None:
        return None, None
    row = (await s.execute(select(CustomerRow.dealer_id, CustomerRow.id).join(SiteRow, SiteRow.customer_id == CustomerRow.id)
                           .where(SiteRow.id == site_id))).first()
    return (row[0], row[1]) if row is not None else (None, None)


# -- GDPR erasure ----------------------------------------------------------------------
def _scrub(value: Any, pattern: re.Pattern[str], replacement: str) -> Any:
    """``value`` (JSON: strings, lists, objects and their keys) with every match replaced."""
    if isinstance(value, str):
        return pattern.sub(replacement, value)
    if isinstance(value, list):
        return [_scrub(v, pattern, replacement) for v in value]
    if isinstance(value, dict):
        return {_scrub(k, pattern, replacement): _scrub(v, pattern, replacement) for k, v in value.items()}
    return value


def _scrub_json(text: str, pattern: re.Pattern[str], replacement: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return pattern.sub(replacement, text)
    return json.dumps(_scrub(data, pattern, replacement), separators=(",", ":"))


async def erase_person(s: AsyncSession, values: list[str], *, replacement: str) -> int:
    """Replace ``values`` (a person's e-mail address, name; case-insensitive) by ``replacement``
    wherever security alerting keeps them: the alerts' subject, title, text and JSON body, the
    deliveries' target and last error (a delivery still pending to an erased address is given
    up as dead), the subscriptions' contact, creator and target (a subscription whose target
    was the person is disabled), and the follower's engine state (counting keys, samples). Returns how many alerts were changed."""
    values = sorted({v.strip() for v in values if v and len(v.strip()) >= 3}, key=len, reverse=True)
    if not values:
        return 0
    # whole values only: erasing 10.0.0.1 leaves 10.0.0.10, bob@x.example leaves jbob@x.example
    pattern = re.compile(r"(?<![\w.+-])(?:" + "|".join(re.escape(v) for v in values) + r")(?![\w])",
                         re.IGNORECASE)
    escaped = {json.dumps(v)[1:-1] for v in values} | set(values)  # as the JSON bodies spell them
    like = [func.lower(col).contains(v.lower(), autoescape=True)
            for v in escaped for col in (SecurityAlertRow.subject, SecurityAlertRow.title,
                                         SecurityAlertRow.text, SecurityAlertRow.payload)]
    changed = 0
    for row in (await s.scalars(select(SecurityAlertRow).where(or_(*like)))).all():
        row.subject = pattern.sub(replacement, row.subject)[:300]
        row.title = pattern.sub(replacement, row.title)[:300]
        row.text = pattern.sub(replacement, row.text)
        row.payload = _scrub_json(row.payload, pattern, replacement)
        changed += 1
    deliveries = (await s.scalars(select(SecurityAlertDeliveryRow).where(or_(*(
        func.lower(col).contains(v.lower(), autoescape=True)
        for v in values for col in (SecurityAlertDeliveryRow.target, SecurityAlertDeliveryRow.last_error)))))).all()
    for d in deliveries:
        if pattern.search(d.target):
            d.target = pattern.sub(replacement, d.target)[:512]
            if d.status == PENDING:
                d.status, d.last_error = DEAD, "the target address was erased (GDPR)"
        if d.last_error:
            d.last_error = pattern.sub(replacement, d.last_error)[:500]
    for sub in (await s.scalars(select(SecuritySubscriptionRow).where(or_(*(
        func.lower(col).contains(v.lower(), autoescape=True)
        for v in values for col in (SecuritySubscriptionRow.contact, SecuritySubscriptionRow.created_by,
                                    SecuritySubscriptionRow.target)))))).all():
        sub.contact = pattern.sub(replacement, sub.contact)[:200]
        if sub.created_by:
            sub.created_by = pattern.sub(replacement, sub.created_by)[:320]
        if pattern.search(sub.target):  # the person was the contact: nothing more goes to them
            sub.target, sub.enabled = pattern.sub(replacement, sub.target)[:512], False
    for cursor in (await s.scalars(select(SecurityAlertCursorRow))).all():
        if cursor.state and (pattern.search(cursor.state) or any(e in cursor.state for e in escaped)):
            cursor.state = _scrub_json(cursor.state, pattern, replacement)
    await s.flush()
    return changed
