"""Group commit for the proxy's audit events.

Every proxied request is audited before its response goes out (fail closed),
but one database transaction per request caps the proxy at a few hundred
requests/s. Events that arrive while a write is in flight are written together
in the next one (``append_many`` when the sink has it).

``append`` waits until the event is stored; the proxy awaits it for every
request before the response goes out, so a request whose record cannot be
written is never served. ``submit`` queues an event without waiting. After a
failed write ``failing`` is true until a write succeeds or, with nothing to
write, the writer's own probe of the store (every ``reprobe_s``) answers: it
never stays latched after the database is back.

One event the store cannot take (a value RFC 8785 cannot represent) never
fails the others: when a batch write fails with such a data error, the batch
is written again without it, and in its place a sanitised
``dwa.audit_event_rejected`` record (its type, session, outcome and the error,
none of its values) is stored, so the refusal it described still leaves a
record and its waiter is answered. Events are made valid where the proxy
queues them (``audit_safe.safe_event``: undecodable bytes become ``%XX``), so
this is the second line.

What is stored matches what the browser got (issue 21 F5). A waiter that gave up (the proxy
answers 503 after ``AUDIT_WAIT_S``) cancels its future: an event still queued is rewritten
before it is written (``not_delivered_record``: status 503, ``delivered: false``, the
intended status kept), and one already in the write that then lands is followed by a
``dwa.request_not_delivered`` record. Refusals (``dwa.transfer_blocked``) whose write failed
are not lost: they are kept, marked not delivered (the browser got a 503), up to
``MAX_RETAINED``, and written as soon as the store answers again; past that bound only the
store's ``audit.recovered`` record counts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import text

from audit.errors import NotCanonicalisable
from gateway.proxy.audit_safe import safe_event, safe_text
from printgate.domain import AuditEventIn, Outcome, event_types
from printgate.interfaces import AuditSink
from printgate.lifecycle import cancel_and_wait
from printgate.logs import get_logger

log = get_logger(__name__)

_Item = tuple[AuditEventIn, "asyncio.Future[None]"]
Probe = Callable[[], Awaitable[None]]
PROBE_TIMEOUT_S = 5.0
MAX_RETAINED = 10_000  # refusals kept through an outage (a few hundred bytes each)
AUDIT_TIMEOUT = "audit timeout"  # the record was not stored in time: the browser got 503
AUDIT_UNAVAILABLE = "audit unavailable"  # the write failed: the browser got 503
# what a write that fails because of one event's values raises (not an outage of the store)
DATA_ERRORS: tuple[type[BaseException], ...] = (NotCanonicalisable, UnicodeError, ValueError, TypeError)


def rejected_record(event: AuditEventIn, exc: BaseException) -> AuditEventIn:
    """What is stored in place of an event the store refused: who, what type, why; no values."""
    return AuditEventIn(
        type=event_types.DWA_AUDIT_EVENT_REJECTED,
        outcome=event.outcome if isinstance(event.outcome, Outcome) else Outcome.FAILURE,
        dealer_id=event.dealer_id, customer_id=event.customer_id, device_id=event.device_id,
        session_id=event.session_id, source_ip=safe_text(event.source_ip) if event.source_ip else None,
        details={"rejected_type": safe_text(event.type), "error": safe_text(str(exc))[:300],
                 "error_type": type(exc).__name__,
                 "detail_keys": sorted(safe_text(str(k)) for k in event.details)[:40]},
    )


def not_delivered_record(event: AuditEventIn, why: str) -> AuditEventIn:
    """``event`` as it really ended: not delivered (the browser got the proxy's 503), ``why``."""
    details = dict(event.details)
    if details.get("delivered") is False:
        return event
    details["delivered"] = False
    details["not_delivered"] = f"not delivered: {why}"
    if "status" in details:
        details["intended_status"] = details["status"]
        details["status"] = 503
    outcome = event.outcome if event.outcome == Outcome.BLOCKED else Outcome.FAILURE
    return dataclasses.replace(event, details=details, outcome=outcome)


def late_followup(event: AuditEventIn) -> AuditEventIn:
    """Stored after ``event`` when its waiter gave up while it was being written: the record
    says what was meant, this one that the browser got a 503 instead."""
    keys = ("method", "path", "status", "rule", "blocked")
    return AuditEventIn(
        type=event_types.DWA_REQUEST_NOT_DELIVERED, outcome=Outcome.FAILURE,
        dealer_id=event.dealer_id, customer_id=event.customer_id, device_id=event.device_id,
        session_id=event.session_id, source_ip=event.source_ip,
        details={"record_type": event.type, "status": 503, "delivered": False,
                 "not_delivered": f"not delivered: {AUDIT_TIMEOUT}",
                 **{f"intended_{k}" if k == "status" else k: event.details[k] for k in keys if k in event.details}},
    )


def database_probe(sink: object) -> Probe | None:
    """``SELECT 1`` on the sink's database (``AuditLog.db``), if it has one."""
    db = getattr(sink, "db", None)
    if db is None or not hasattr(db, "session"):
        return None

    async def probe() -> None:
        async with db.session() as s:
            await s.execute(text("SELECT 1"))

    return probe


class GroupCommitAudit:
    """An ``AuditSink`` that batches concurrent appends into one write of the inner sink."""

    def __init__(self, sink: AuditSink, *, max_batch: int = 256, probe: Probe | None = None,
                 reprobe_s: float = 1.0) -> None:
        self._sink = sink
        self._probe = probe if probe is not None else database_probe(sink)
        self._reprobe_s = reprobe_s
        self._failing_since = 0.0
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        many: Callable[[Sequence[AuditEventIn]], Awaitable[Any]] | None = getattr(sink, "append_many", None)
        self._append_many = many
        self._failing = False
        self._retained: list[AuditEventIn] = []  # refusals whose write failed, written on recovery
        self.dropped = 0  # refusals past MAX_RETAINED (only counted by the store's outage record)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="dwa-audit-group-commit")

    @property
    def failing(self) -> bool:
        return self._failing

    async def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until every queued event was written (or failed)."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._queue.join()

    def submit(self, event: AuditEventIn) -> None:
        """Queue without waiting (the writer stores it with the next batch)."""
        if self._task is None:
            raise RuntimeError("audit writer not started")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_consume)
        self._queue.put_nowait((safe_event(event), fut))

    async def aclose(self) -> None:
        if self._task is not None:
            await self.flush()
            await cancel_and_wait(self._task)
            self._task = None
        if self._retained:  # refusals kept through an outage: a last try (logged if it fails)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PROBE_TIMEOUT_S):
                    await self._write_retained()
            if self._retained:
                log.error("dwa.audit_retained_lost", count=len(self._retained))
        while not self._queue.empty():  # nothing may wait forever
            _event, fut = self._queue.get_nowait()
            if not fut.done():
                fut.set_exception(RuntimeError("audit writer stopped"))

    async def append(self, event: AuditEventIn) -> None:
        event = safe_event(event)
        if self._task is None:  # not started: write through
            await self._sink.append(event)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((event, fut))
        await fut

    async def _run(self) -> None:
        while True:
            if self._failing and self._probe is not None:
                try:
                    first = await asyncio.wait_for(self._queue.get(), self._reprobe_s)
                except TimeoutError:
                    await self._reprobe()
                    continue
            else:
                first = await self._queue.get()
            batch = [first]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            # a waiter that gave up was answered 503: its record says so
            batch = [(not_delivered_record(e, AUDIT_TIMEOUT) if f.cancelled() else e, f) for e, f in batch]
            gave_up = {id(f) for _e, f in batch if f.cancelled()}
            try:
                try:
                    await self._write([event for event, _ in batch])
                except DATA_ERRORS:
                    await self._isolate(batch)  # one bad event: the others are written without it
                self._recovered()
                late = [late_followup(e) for e, f in batch if f.cancelled() and id(f) not in gave_up]
                if late:
                    await self._write(late)
            except Exception as exc:  # every waiter learns its event was not stored
                if not self._failing:
                    self._failing_since = time.monotonic()
                self._failing = True
                log.error("dwa.audit_batch_failed", error=str(exc), size=len(batch))
                self._retain([e for e, _f in batch])
                for _event, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
            else:
                for _event, fut in batch:
                    if not fut.done():
                        fut.set_result(None)
                await self._write_retained()
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _isolate(self, batch: list[_Item]) -> None:
        """Write the batch's events one by one; an event refused for its values is replaced by
        its ``dwa.audit_event_rejected`` record (its waiter is answered: the record exists). An
        error that is not about the values (the store is down) fails what is left."""
        for event, fut in batch:
            try:
                await self._write([event])
            except DATA_ERRORS as exc:
                log.error("dwa.audit_event_rejected", type=event.type, error=str(exc)[:300])
                await self._write([rejected_record(event, exc)])
            if not fut.done():
                fut.set_result(None)

    def _retain(self, events: list[AuditEventIn]) -> None:
        """Keep the refusals of a failed write (their browsers got 503), bounded."""
        for event in events:
            if event.type != event_types.DWA_TRANSFER_BLOCKED:
                continue
            if len(self._retained) >= MAX_RETAINED:
                self.dropped += 1
                continue
            self._retained.append(not_delivered_record(event, AUDIT_UNAVAILABLE))

    async def _write_retained(self) -> None:
        """The store answers again: write the kept refusals (kept again if this fails)."""
        while self._retained:
            chunk = self._retained[: self._max_batch]
            try:
                await self._write(chunk)
            except Exception as exc:
                log.error("dwa.audit_retained_failed", error=str(exc), kept=len(self._retained))
                return
            del self._retained[: len(chunk)]
            log.warning("dwa.audit_retained_written", count=len(chunk))

    @property
    def retained(self) -> int:
        return len(self._retained)

    async def _reprobe(self) -> None:
        assert self._probe is not None
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                await self._probe()
        except Exception:  # still unreachable: try again after reprobe_s
            return
        self._recovered()
        await self._write_retained()

    def _recovered(self) -> None:
        if self._failing:
            log.warning("dwa.audit_recovered", outage_seconds=round(time.monotonic() - self._failing_since, 2))
        self._failing = False

    async def _write(self, events: list[AuditEventIn]) -> None:
        if self._append_many is not None:
            await self._append_many(events)
            return
        for event in events:
            await self._sink.append(event)


def _consume(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.exception()  # mark retrieved; the writer already logged the failure
