"""The supervised follower: audit records by sequence -> rules -> stored alerts -> delivery.

``evaluate_once`` reads the records after the persisted cursor (``audit.query.search``),
fills in the tenant of records that name none (the account, agent, device or session they
are about), feeds them to the engine, and in ONE transaction stores the new alerts, one
delivery per matching subscription (and per operator target for platform alerts), the new
cursor and the engine's state. A crash before that commit re-reads the same records from the
same state (alert ids are stable): no alert is lost, none is raised twice.

``deliver_once`` sends the due deliveries concurrently per (channel, target) -- at most
``concurrency`` targets at a time, each attempt bounded by ``attempt_timeout_s`` -- so a slow
receiver delays only its own; targets are taken round-robin between their owners (a dealer's own
subscriptions, each customer's, the operator's) with at most ``per_tenant`` of one dealer in flight
(half the slots), and a target that failed ``breaker_failures`` times in a row is left alone by
its circuit breaker (holding no slot), so one tenant's dead collectors never delay another's alerts; a failing channel is retried with exponential back-off (``retry_base_s`` doubling, at most an hour) up to
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
OPERATOR_OWNER = "\x00operator"  # the owner of operator targets (no subscription, no dealer)
Owner = tuple[str, str]  # whose target: (dealer or OPERATOR_OWNER, customer or "" for dealer-wide)


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
                 concurrency: int = 8, attempt_timeout_s: float = 30.0, per_tenant: int | None = None,
                 per_owner: int | None = None,
                 breaker_failures: int = 3, breaker_seconds: float = 60.0, per_target_batch: int = 20) -> None:
        if concurrency < 1 or attempt_timeout_s <= 0:
            raise ValueError("delivery concurrency must be >= 1 and the attempt timeout > 0 seconds")
        if (per_tenant is not None and per_tenant < 1) or (per_owner is not None and per_owner < 1) \
                or breaker_failures < 1 or breaker_seconds <= 0 \
                or per_target_batch < 1:
            raise ValueError("per-tenant targets, breaker failures and the per-target batch must be >= 1 "
                             "and the breaker time > 0 seconds")
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
        # fairness: one dealer's targets take at most half the slots (default); one owner (the
        # dealer's own subscriptions, or one customer's) leaves at least one of them to the
        # dealer's other owners; owners are taken round-robin
        self.per_tenant = per_tenant if per_tenant is not None else max(1, concurrency // 2)
        self.per_owner = max(1, self.per_tenant - 1) if per_owner is None else per_owner
        self.per_target_batch = per_target_batch
        self._owner_inflight: dict[Owner, int] = {}  # targets in flight per owner
        self._rr = 0  # which owner goes first this round
        # circuit breaker per (channel, target): consecutive failed attempts, (open until, length)
        self.breaker_failures, self.breaker_seconds = breaker_failures, breaker_seconds
        self._failures: dict[tuple[str, str], int] = {}
        self._open_until: dict[tuple[str, str], tuple[datetime, float]] = {}

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
        """Send what is due, one task per (channel, target), at most ``concurrency`` at a time, each
        attempt bounded by ``attempt_timeout_s``: a slow SMTP server or webhook receiver delays
        only its own deliveries. A target's deliveries go in order, one after another (after its
        first failure the rest of the round is not tried: they fail with it).

        Fair between tenants: targets are taken round-robin between the dealers whose
        subscriptions they are (operator targets count as one more), at most ``per_tenant``
        targets of one dealer in flight; a target that failed ``breaker_failures`` times in a row
        is left alone (its deliveries wait, holding no slot) for ``breaker_seconds``, doubling
        while it keeps failing. One dealer's dead collectors cannot hold up another's alerts.

        ``wait=False`` (the loop) starts the tasks and returns at once, skipping targets still in
        flight. ``wait=True`` repeats rounds until no target it has not tried yet is due, and
        returns how many were sent (``wait=False``: 0)."""
        sent = 0
        tried: set[tuple[str, str]] = set()
        while True:
            tasks = await self._start_round(skip=tried)
            if not wait:
                return 0
            if not tasks:
                return sent
            sent += sum(await asyncio.gather(*tasks))

    async def _start_round(self, *, skip: set[tuple[str, str]]) -> list[asyncio.Task[int]]:
        now = self.clock()
        async with self.db.session() as s:
            chosen = self._fair_order(await store.due_targets(s, now=now), now, skip)
            groups: list[tuple[tuple[str, str], Owner, list[store.DueAlertDelivery]]] = []
            sealed: dict[str, tuple[str | None, str | None]] = {}
            for t, owner in chosen:
                group = await store.due_deliveries_to(s, now=now, channel=t.channel, target=t.target,
                                                      limit=self.per_target_batch)
                if not group:
                    continue
                groups.append(((t.channel, t.target), owner, group))
                for d in group:
                    if d.channel == "webhook" and d.subscription_id is not None and d.subscription_id not in sealed:
                        sub = await store.get_subscription(s, d.subscription_id)
                        sealed[d.subscription_id] = (sub.secret, sub.dealer_id) if sub else (None, None)
        tasks = []
        for key, owner, group in groups:
            skip.add(key)
            task = asyncio.create_task(self._deliver_target(group, sealed), name=f"security-alert-to-{key[0]}")
            self._inflight[key] = [d.id for d in group]
            self._inflight_tasks[key] = task
            self._owner_inflight[owner] = self._owner_inflight.get(owner, 0) + 1
            task.add_done_callback(functools.partial(self._done, key, owner))
            tasks.append(task)
        return tasks

    def _fair_order(self, due: list[store.DueTarget], now: datetime,
                    skip: set[tuple[str, str]]) -> list[tuple[store.DueTarget, Owner]]:
        """The due targets to start now: interleaved between owners (a dealer's own subscriptions,
        each of its customers', the operator's; each owner's longest-waiting first, the owner that
        goes first rotating per round), at most ``per_tenant`` targets of one dealer and
        ``per_owner`` of one owner in flight; targets in flight, already tried (``skip``) or with an
        open breaker are left out."""
        by_owner: dict[Owner, list[store.DueTarget]] = {}
        for t in due:
            key = (t.channel, t.target)
            if key in self._inflight_tasks or key in skip:
                continue
            opened = self._open_until.get(key)
            if opened is not None and now < opened[0]:
                continue
            by_owner.setdefault((t.dealer_id or OPERATOR_OWNER, t.customer_id or ""), []).append(t)
        owners = sorted(by_owner)
        if not owners:
            return []
        self._rr = (self._rr + 1) % len(owners)
        owners = owners[self._rr:] + owners[:self._rr]
        busy = dict(self._owner_inflight)
        busy_dealer: dict[str, int] = {}
        for (dealer, _customer), n in busy.items():
            busy_dealer[dealer] = busy_dealer.get(dealer, 0) + n
        order: list[tuple[store.DueTarget, Owner]] = []
        for i in range(max(len(q) for q in by_owner.values())):
            for owner in owners:
                queue = by_owner[owner]
                if i < len(queue) and busy.get(owner, 0) < self.per_owner \
                        and busy_dealer.get(owner[0], 0) < self.per_tenant:
                    busy[owner] = busy.get(owner, 0) + 1
                    busy_dealer[owner[0]] = busy_dealer.get(owner[0], 0) + 1
                    order.append((queue[i], owner))
        return order

    def _breaker(self, key: tuple[str, str], ok: bool) -> None:
        """Count a target's consecutive failed attempts; open (or extend) its breaker at the threshold."""
        if ok:
            self._failures.pop(key, None)
            self._open_until.pop(key, None)
            return
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        if failures < self.breaker_failures:
            return
        previous = self._open_until.get(key)
        length = min(previous[1] * 2, MAX_BACKOFF_S) if previous is not None else self.breaker_seconds
        self._open_until[key] = (self.clock() + timedelta(seconds=length), length)
        log.warning("alerting.breaker_open", channel=key[0], target=key[1], failures=failures, seconds=length)

    def _done(self, key: tuple[str, str], owner: Owner, _task: asyncio.Task[int]) -> None:
        self._inflight.pop(key, None)
        left = self._owner_inflight.get(owner, 0) - 1
        if left > 0:
            self._owner_inflight[owner] = left
        else:
            self._owner_inflight.pop(owner, None)
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
                    self._breaker((d.channel, d.target), False)
                    await self._failed(d, failed)
                    continue
                self._breaker((d.channel, d.target), True)
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
