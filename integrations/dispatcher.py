"""Delivering the outbox to dealers' webhook endpoints (docs/integrations.md).

``WebhookDispatcher.run()`` is a loop for the cloud's ``Supervisor``. Each round it

1. fans new outbox events out into one delivery per matching enabled endpoint;
2. claims due deliveries (leased, so a crashed dispatcher's work comes back after the lease),
   at most ``per_endpoint`` in flight per endpoint, ``per_dealer`` per dealer (well below the
   pool) and ``max_in_flight`` overall, taking endpoints round-robin between dealers, so one
   dealer's slow or dead receivers never hold up another dealer's deliveries; an endpoint that
   failed ``breaker_failures`` times in a row is left alone (its deliveries wait, holding no
   slot) for ``breaker_seconds``, doubling while it keeps failing, then tried with one call;
3. POSTs each, signed with the endpoint's secret (unsealed with the vault's master key), and
   records the outcome: delivered; retried after an exponential back-off with jitter; or, after
   ``max_attempts`` (or an answer that says trying again is useless), a dead letter the portal
   shows and can redeliver.

Delivery is at least once: the event id (``X-Printgate-Event-Id``) is the same on every
attempt, receivers de-duplicate on it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from integrations.webhook import DeliveryResult, WebhookTransport
from printgate.domain import AuditEventIn, Outcome, event_types
from printgate.errors import VaultError
from printgate.interfaces import AuditSink
from printgate.logs import get_logger
from printgate.store import outbox
from printgate.store.db import Database
from printgate.vault.kms import KeyWrapper

log = get_logger("integrations.dispatcher")

WEBHOOK_DEAD_LETTER = event_types.INTEGRATION_WEBHOOK_DEAD_LETTER


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempt n (1-based) failed → wait ``min(maximum, initial * 2**(n-1))`` ± ``jitter`` (a
    fraction), or the receiver's ``Retry-After`` when longer; dead after ``max_attempts``."""

    max_attempts: int = 8
    initial_seconds: float = 5.0
    maximum_seconds: float = 3600.0
    jitter: float = 0.2

    def delay(self, attempts_made: int, *, retry_after: float | None = None,
              rand: Callable[[], float] = random.random) -> float:
        base = min(self.maximum_seconds, self.initial_seconds * 2 ** max(0, attempts_made - 1))
        spread = base * self.jitter * (2 * rand() - 1)
        wait = max(0.0, base + spread)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.maximum_seconds))
        return wait


class WebhookDispatcher:
    """Fans out and delivers; ``run()`` forever (supervised) or ``run_once()`` (tests)."""

    def __init__(self, db: Database, kms: KeyWrapper, transport: WebhookTransport, *,
                 policy: RetryPolicy = RetryPolicy(), audit: AuditSink | None = None,
                 per_endpoint: int = 2, max_in_flight: int = 64, per_dealer: int = 16,
                 breaker_failures: int = 5, breaker_seconds: float = 60.0, poll_seconds: float = 0.5,
                 batch: int = 200, retention: timedelta | None = timedelta(days=7),
                 clock: Callable[[], datetime] | None = None) -> None:
        self.db, self.kms, self.transport, self.policy, self.audit = db, kms, transport, policy, audit
        self.per_endpoint, self.max_in_flight = per_endpoint, max_in_flight
        self.per_dealer = max(1, min(per_dealer, max_in_flight))
        self.breaker_failures, self.breaker_seconds = breaker_failures, breaker_seconds
        self._dealer_in_flight: dict[str, int] = {}
        self._failures: dict[str, int] = {}  # consecutive failed attempts per endpoint
        self._open_until: dict[str, tuple[datetime, float]] = {}  # breaker: (until, current length)
        self._rr = 0  # which dealer goes first this round
        self.poll_seconds, self.batch = poll_seconds, batch
        self._clock = clock or (lambda: datetime.now(UTC))
        self._in_flight: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self.lease_seconds = transport.timeout * 2 + 5
        self.retention = retention
        self._pruned_at: datetime | None = None

    def wake(self) -> None:
        """Look at the outbox now (after a commit that enqueued something) instead of at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                await self._round()
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
                except TimeoutError:
                    pass
        finally:
            await self._drain(cancel=True)

    async def run_once(self) -> None:
        """One round, waiting for every delivery it started (tests, benchmarks)."""
        await self._round()
        await self._drain(cancel=False)

    async def _round(self) -> None:
        now = self._clock()
        if self.retention is not None and (self._pruned_at is None or now - self._pruned_at > timedelta(hours=1)):
            self._pruned_at = now
            async with self.db.transaction() as s:
                forgotten = await outbox.prune(s, before=now - self.retention)
            if forgotten:
                log.info("webhook.outbox_pruned", events=forgotten)
        free = self.max_in_flight - len(self._tasks)
        async with self.db.transaction() as s:  # one transaction per round: fan out, then claim
            await outbox.fan_out(s, now=now, limit=self.batch)
            owners = await outbox.due_endpoint_owners(s, now=now) if free > 0 else []
            due: list[outbox.DueDelivery] = []
            claimed_by: dict[str, int] = {}  # this round's claims per dealer
            for endpoint_id, dealer_id in self._fair_order(owners, now):
                dealer_busy = self._dealer_in_flight.get(dealer_id, 0) + claimed_by.get(dealer_id, 0)
                slots = min(self.per_endpoint - self._in_flight.get(endpoint_id, 0),
                            self.per_dealer - dealer_busy, free - len(due))
                if endpoint_id in self._open_until:  # half-open: one trial call at a time
                    slots = min(slots, 1 - self._in_flight.get(endpoint_id, 0))
                if slots <= 0:
                    continue
                claimed = await outbox.claim_due(s, now=now, endpoint_id=endpoint_id, limit=slots,
                                                 lease_seconds=self.lease_seconds)
                due += claimed
                claimed_by[dealer_id] = claimed_by.get(dealer_id, 0) + len(claimed)
                if len(due) >= free:
                    break
        for d in due:
            self._in_flight[d.endpoint_id] = self._in_flight.get(d.endpoint_id, 0) + 1
            self._dealer_in_flight[d.dealer_id] = self._dealer_in_flight.get(d.dealer_id, 0) + 1
            task = asyncio.create_task(self._deliver(d), name=f"webhook:{d.delivery_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _fair_order(self, owners: list[tuple[str, str]], now: datetime) -> list[tuple[str, str]]:
        """Due endpoints interleaved between dealers (each dealer's longest-waiting first, the
        dealer that starts rotating per round); endpoints whose breaker is open are left out."""
        by_dealer: dict[str, list[tuple[str, str]]] = {}
        for endpoint_id, dealer_id in owners:
            opened = self._open_until.get(endpoint_id)
            if opened is not None and now < opened[0]:
                continue
            by_dealer.setdefault(dealer_id, []).append((endpoint_id, dealer_id))
        queues = list(by_dealer.values())
        if not queues:
            return []
        self._rr = (self._rr + 1) % len(queues)
        queues = queues[self._rr:] + queues[:self._rr]
        order: list[tuple[str, str]] = []
        for i in range(max(len(q) for q in queues)):
            order += [q[i] for q in queues if i < len(q)]
        return order

    def _breaker(self, endpoint_id: str, ok: bool) -> None:
        """Count consecutive failures; open (or extend) the endpoint's breaker at the threshold."""
        if ok:
            self._failures.pop(endpoint_id, None)
            self._open_until.pop(endpoint_id, None)
            return
        failures = self._failures[endpoint_id] = self._failures.get(endpoint_id, 0) + 1
        if failures < self.breaker_failures:
            return
        previous = self._open_until.get(endpoint_id)
        length = min(previous[1] * 2, 3600.0) if previous is not None else self.breaker_seconds
        self._open_until[endpoint_id] = (self._clock() + timedelta(seconds=length), length)
        log.warning("webhook.breaker_open", endpoint=endpoint_id, failures=failures, seconds=length)

    async def _drain(self, *, cancel: bool) -> None:
        tasks = list(self._tasks)
        if cancel:
            for t in tasks:
                t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _deliver(self, d: outbox.DueDelivery) -> None:
        try:
            try:
                secret = await self.kms.unwrap(d.secret.sealed, outbox.secret_context(d.endpoint_id, d.dealer_id))
            except VaultError as exc:  # counted as an attempt: it ends as a dead letter, not a loop
                result = DeliveryResult(False, None, f"the endpoint's secret cannot be unsealed: {exc.message}",
                                        True, 0.0)
            else:
                result = await self.transport.deliver(d.url, secret, event_id=d.event.id, kind=d.event.kind,
                                                      body=d.event.body())
            self._breaker(d.endpoint_id, result.ok)
            await self._record(d, result)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a store or vault failure: the lease brings the delivery back
            log.error("webhook.delivery_error", delivery=d.delivery_id, endpoint=d.endpoint_id,
                      error=f"{type(exc).__name__}: {exc}"[:300])
        finally:
            left = self._in_flight.get(d.endpoint_id, 1) - 1
            if left > 0:
                self._in_flight[d.endpoint_id] = left
            else:
                self._in_flight.pop(d.endpoint_id, None)
            left = self._dealer_in_flight.get(d.dealer_id, 1) - 1
            if left > 0:
                self._dealer_in_flight[d.dealer_id] = left
            else:
                self._dealer_in_flight.pop(d.dealer_id, None)
            self._wake.set()  # a slot is free: the endpoint's next delivery may go now

    async def _record(self, d: outbox.DueDelivery, result: DeliveryResult) -> None:
        now = self._clock()
        made = d.attempts + 1
        retry_at: datetime | None = None
        if not result.ok and result.retryable and made < self.policy.max_attempts:
            retry_at = now + timedelta(seconds=self.policy.delay(made, retry_after=result.retry_after))
        async with self.db.transaction() as s:
            status = await outbox.record_attempt(s, d.delivery_id, ok=result.ok, status=result.status,
                                                 error=result.error, retry_at=retry_at, now=now)
        if status == outbox.DELIVERED:
            log.info("webhook.delivered", delivery=d.delivery_id, event_id=d.event.id, kind=d.event.kind,
                     endpoint=d.endpoint_id, attempt=made, status=result.status,
                     ms=round(result.duration_s * 1000, 1))
        elif status == outbox.PENDING:
            log.warning("webhook.retry", delivery=d.delivery_id, event_id=d.event.id, endpoint=d.endpoint_id,
                        attempt=made, error=result.error, retry_at=retry_at.isoformat() if retry_at else None)
        else:
            log.warning("webhook.dead_letter", delivery=d.delivery_id, event_id=d.event.id,
                        endpoint=d.endpoint_id, attempts=made, error=result.error)
            if self.audit is not None:
                await self.audit.append(AuditEventIn(
                    type=WEBHOOK_DEAD_LETTER, outcome=Outcome.FAILURE, dealer_id=d.dealer_id,
                    customer_id=d.event.customer_id, device_id=d.event.device_id,
                    details={"delivery": d.delivery_id, "endpoint": d.endpoint_id, "event": d.event.id,
                             "kind": d.event.kind, "attempts": made, "error": result.error[:200]}))
