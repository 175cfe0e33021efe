"""The supervised follower: audit records by sequence -> rules -> stored alerts -> delivery.

``evaluate_once`` reads the records after the persisted cursor (``audit.query.search``),
fills in the tenant of records that name none (the account, agent, device or session they
are about), feeds them to the engine, and in ONE transaction stores the new alerts, one
delivery per matching subscription (and per operator target for platform alerts), the new
cursor and the engine's state. A crash before that commit re-reads the same records from the
same state (alert ids are stable): no alert is lost, none is raised twice.

``deliver_once`` sends the due deliveries concurrently per (channel, target) -- at most
``concurrency`` targets at a time, each attempt bounded by ``attempt_timeout_s`` -- so a slow
receiver delays only its own; a failing channel is retried with exponential back-off (``retry_base_s`` doubling, at most an hour) up to
``max_attempts`` and then kept as dead; it never stops evaluation or the other channels.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from alerting.delivery import Channels
from alerting.engine import Alert, Engine, to_payload
from alerting.errors import DeliveryFailed
from alerting.secrets import unseal
from audit.query import AuditFilter, search
from integrations.smtp import SmtpConfig
from printgate.domain import AuditRecord
from printgate.lifecycle import cancel_and_wait
from printgate.logs import get_logger
from printgate.settings import SecurityAlertSettings
from printgate.store import audit as audit_store
from printgate.store import security_subscriptions as store
from printgate.store.db import Database
from printgate.vault.kms import KeyWrapper

log = get_logger("alerting.follower")
CURSOR = "security-alerts"
MAX_BACKOFF_S = 3600.0


@dataclass(frozen=True, slots=True)
class OperatorTargets:
    """Where platform alerts (about no tenant) go: from the settings."""

    emails: tuple[str, ...] = ()
    webhooks: tuple[str, ...] = ()
    webhook_secret: str = ""
    syslog: tuple[str, ...] = ()

    def targets(self) -> list[tuple[str, str]]:
        return ([("email", e) for e in self.emails] + [("webhook", w) for w in self.webhooks]
                + [("syslog", t) for t in self.syslog])


class SecurityAlertFollower:
    def __init__(self, db: Database, channels: Channels, kms: KeyWrapper, *,
                 operators: OperatorTargets = OperatorTargets(),
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC), poll_s: float = 1.0,
                 batch: int = 500, max_attempts: int = 8, retry_base_s: float = 5.0,
                 concurrency: int = 8, attempt_timeout_s: float = 30.0) -> None:
        if concurrency < 1 or attempt_timeout_s <= 0:
            raise ValueError("delivery concurrency must be >= 1 and the attempt timeout > 0 seconds")
        self.db = db
        self.channels = channels
        self.kms = kms  # opens the subscriptions' sealed webhook secrets
        self.operators = operators
        self.clock = clock
        self.poll_s = poll_s
        self.batch = batch
        self.max_attempts = max_attempts
        self.retry_base_s = retry_base_s
        self.wake = asyncio.Event()
        self.caught_up = False  # the last evaluation read everything there was
        self.attempt_timeout_s = attempt_timeout_s  # one delivery attempt, whatever the channel
        self._gate = asyncio.Semaphore(concurrency)  # targets being sent to at once
        self._store_lock = asyncio.Lock()  # one delivery-state write at a time (SQLite: one writer)
        self._inflight: dict[tuple[str, str], list[int]] = {}  # (channel, target) -> delivery ids
        self._inflight_tasks: dict[tuple[str, str], asyncio.Task[int]] = {}

    # -- evaluation ----------------------------------------------------------------------
    async def evaluate_once(self) -> list[Alert]:
        """One batch (at most ``batch`` records); returns the alerts it raised. ``caught_up``
        says whether it read everything there was."""
        async with self.db.session() as s:
            cursor = await store.load_cursor(s, CURSOR)
        if cursor is None:  # first start: alert from now on, not on the whole history
            after, engine = (await audit_store.read_head(self.db))[0], Engine()
        else:
            after, engine = cursor[0], Engine.from_state(cursor[1])
        records = await search(self.db, AuditFilter(after_seq=after, limit=self.batch))
        records = await self._with_tenants(records)
        alerts: list[Alert] = []
        for r in records:
            alerts += engine.feed(r)
        now = self.clock()
        self.caught_up = len(records) < self.batch
        if self.caught_up:  # windows close on the clock only once the backlog is read (records carry time)
            alerts += engine.tick(now)
        last_seq = records[-1].seq if records else after
        if cursor is not None and not records and not alerts:
            return []  # nothing read, nothing raised: the stored cursor and state stand
        async with self.db.transaction() as s:
            for alert in alerts:
                payload = to_payload(alert)
                new = await store.insert_alert(s, {
                    "id": alert.id, "rule": alert.rule, "category": alert.category, "severity": alert.severity,
                    "kind": alert.kind, "title": alert.title[:300], "text": alert.text,
                    "dealer_id": alert.dealer_id, "customer_id": alert.customer_id, "subject": alert.subject[:300],
                    "count": alert.count, "first_seq": alert.first_seq, "last_seq": alert.last_seq,
                    "first_at": alert.first_at, "last_at": alert.last_at,
                    "payload": json.dumps(payload, separators=(",", ":")),
                }, now=now)
                if not new:
                    continue
                targets: list[tuple[str | None, str, str]] = []
                if alert.platform:
                    targets = [(None, ch, t) for ch, t in self.operators.targets()]
                else:
                    subs = await store.matching_subscriptions(
                        s, dealer_id=alert.dealer_id, customer_id=alert.customer_id,
                        category=alert.category, severity=alert.severity)
                    targets = [(sub.id, sub.channel, sub.target) for sub in subs]
                seen: set[tuple[str, str]] = set()
                for sub_id, channel, target in targets:
                    if (channel, target) in seen:
                        continue  # a contact subscribed twice gets one message
                    seen.add((channel, target))
                    await store.add_delivery(s, alert_id=alert.id, subscription_id=sub_id, channel=channel,
                                             target=target, now=now)
            await store.save_cursor(s, CURSOR, last_seq=last_seq, state=engine.to_state(), now=now)
        if alerts:
            log.info("alerting.raised", count=len(alerts), rules=sorted({a.rule for a in alerts}),
                     through_seq=last_seq)
            self.wake.set()
        return alerts

    async def _with_tenants(self, records: list[AuditRecord]) -> list[AuditRecord]:
        out = []
        cache: dict[tuple[str | None, ...], tuple[str | None, str | None]] = {}
        dealers: dict[str, str | None] = {}
        async with self.db.session() as s:
            for r in records:
                if r.dealer_id is not None:
                    out.append(r)
                    continue
                if r.customer_id is not None:  # a customer's staff record names no dealer: add it
                    if r.customer_id not in dealers:
                        dealers[r.customer_id] = await store.dealer_of_customer(s, r.customer_id)
                    out.append(replace(r, dealer_id=dealers[r.customer_id]))
                    continue
                agent = r.details.get("agent_id")
                agent_id = agent if isinstance(agent, str) else (
                    r.actor.removeprefix("agent:") if r.actor and r.actor.startswith("agent:") else None)
                email = r.actor if r.actor and "@" in r.actor else None
                key = (email, agent_id, r.device_id, r.session_id)
                if key not in cache:
                    cache[key] = await store.tenant_of(s, email=email, agent_id=agent_id,
                                                       device_id=r.device_id, session_id=r.session_id)
                dealer, customer = cache[key]
                out.append(replace(r, dealer_id=dealer, customer_id=customer) if dealer or customer else r)
        return out

    # -- delivery ------------------------------------------------------------------------
    async def deliver_once(self, *, wait: bool = True) -> int:
        """Send what is due, one task per (channel, target) at most ``concurrency`` at a time, each
        attempt bounded by ``attempt_timeout_s``: a slow SMTP server or webhook receiver delays
        only its own deliveries. A target's deliveries go in order, one after another (after its
        first failure the rest of the round is not tried: they fail with it). ``wait=False``
        (the loop) starts the tasks and returns at once, skipping targets still in flight.
        Returns how many were sent (``wait=True``) or 0."""
        now = self.clock()
        busy = {i for ids in self._inflight.values() for i in ids}
        async with self.db.session() as s:
            due = [d for d in await store.due_deliveries(s, now=now) if d.id not in busy]
            sealed: dict[str, tuple[str | None, str | None]] = {}
            for d in due:
                if d.channel == "webhook" and d.subscription_id is not None and d.subscription_id not in sealed:
                    sub = await store.get_subscription(s, d.subscription_id)
                    sealed[d.subscription_id] = (sub.secret, sub.dealer_id) if sub else (None, None)
        groups: dict[tuple[str, str], list[store.DueAlertDelivery]] = {}
        for d in due:
            groups.setdefault((d.channel, d.target), []).append(d)
        tasks = []
        for key, group in groups.items():
            if key in self._inflight_tasks:
                continue  # still sending its earlier ones: the next round takes these
            task = asyncio.create_task(self._deliver_target(group, sealed), name=f"security-alert-to-{key[0]}")
            self._inflight[key] = [d.id for d in group]
            self._inflight_tasks[key] = task
            task.add_done_callback(functools.partial(self._done, key))
            tasks.append(task)
        if not wait:
            return 0
        return sum(await asyncio.gather(*tasks))

    def _done(self, key: tuple[str, str], _task: asyncio.Task[int]) -> None:
        self._inflight.pop(key, None)
        task = self._inflight_tasks.pop(key, None)
        if task is not None and not task.cancelled() and task.exception() is not None:
            log.error("alerting.delivery_task_failed", channel=key[0], error=repr(task.exception()))

    async def _deliver_target(self, group: list[store.DueAlertDelivery],
                              sealed: dict[str, tuple[str | None, str | None]]) -> int:
        sent = 0
        async with self._gate:
            failed: str | None = None
            for d in group:
                if failed is not None:
                    await self._failed(d, f"not tried: the same target just failed ({failed})")
                    continue
                try:
                    async with asyncio.timeout(self.attempt_timeout_s):
                        secret: str | None = self.operators.webhook_secret
                        if d.subscription_id is not None and d.channel == "webhook":
                            stored, dealer_id = sealed.get(d.subscription_id, (None, None))
                            if stored is None:
                                raise DeliveryFailed("the subscription was removed")
                            secret = await unseal(self.kms, stored, dealer_id=dealer_id, target=d.target)
                        await self.channels.send(d.channel, d.target, secret, json.loads(d.payload))
                except (DeliveryFailed, TimeoutError) as exc:
                    failed = (exc.message if isinstance(exc, DeliveryFailed)
                              else f"no answer within {self.attempt_timeout_s:g} s")
                    await self._failed(d, failed)
                    continue
                async with self._store_lock, self.db.transaction() as s:
                    await store.mark_sent(s, d.id, now=self.clock())
                sent += 1
        return sent

    async def _failed(self, d: store.DueAlertDelivery, error: str) -> None:
        attempts = d.attempts + 1
        dead = attempts >= self.max_attempts
        delay = min(MAX_BACKOFF_S, self.retry_base_s * 2 ** (attempts - 1))
        async with self._store_lock, self.db.transaction() as s:
            await store.mark_failed(s, d.id, error=error, dead=dead, next_at=self.clock() + timedelta(seconds=delay))
        log.warning("alerting.delivery_failed", channel=d.channel, target=d.target, alert=d.alert_id,
                    attempts=attempts, dead=dead, error=error)

    async def aclose(self) -> None:
        for task in list(self._inflight_tasks.values()):
            await cancel_and_wait(task)
        await self.channels.aclose()

    # -- the supervised loops ------------------------------------------------------------
    async def run_evaluation(self) -> None:
        while True:
            await self.evaluate_once()
            if self.caught_up:
                await asyncio.sleep(self.poll_s)

    async def run_delivery(self) -> None:
        while True:
            await self.deliver_once(wait=False)
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), self.poll_s)
            except TimeoutError:
                pass


def follower_from_settings(db: Database, cfg: SecurityAlertSettings, kms: KeyWrapper) -> SecurityAlertFollower:
    """The follower as ``printgate serve`` runs it (``[security_alerts]`` settings)."""
    smtp = SmtpConfig(host=cfg.smtp_host, port=cfg.smtp_port, security=cfg.smtp_security,
                      username=cfg.smtp_username, password=cfg.smtp_password.get_secret_value(),
                      mail_from=cfg.mail_from, ca_file=cfg.smtp_ca_file) if cfg.smtp_host else None
    channels = Channels(smtp=smtp, allow_private_webhooks=cfg.allow_private_webhooks,
                        syslog_ca_file=cfg.syslog_ca_file,
                        trusted_syslog=tuple(cfg.operator_syslog))  # operator config, may be internal
    operators = OperatorTargets(emails=tuple(cfg.operator_emails), webhooks=tuple(cfg.operator_webhooks),
                                webhook_secret=cfg.operator_webhook_secret.get_secret_value(),
                                syslog=tuple(cfg.operator_syslog))
    return SecurityAlertFollower(db, channels, kms, operators=operators, poll_s=cfg.poll_seconds, batch=cfg.batch,
                                 max_attempts=cfg.max_attempts, retry_base_s=cfg.retry_base_seconds,
                                 concurrency=cfg.delivery_concurrency, attempt_timeout_s=cfg.delivery_timeout_seconds)
