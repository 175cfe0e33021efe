"""Ingest: the one entry point for readings agents upload (the agent channel calls it).

A batch is decoded and checked at the edge (``fleet.decode``), then stored in ONE
transaction: the batch ledger (``reading_batches``: the one idempotency record; a batch id
an agent delivered before changes nothing), the history (``COPY`` on PostgreSQL, multi-row
``INSERT`` on SQLite), the current device states (one upsert), supplies and alerts. The
answer (stored, duplicate, the readings refused and why) is given only once that committed.

``FleetIngest`` bounds the batches in flight (``max_in_flight``) and their encoded bytes, over
all agents (``max_bytes_in_flight``) and per agent (``max_agent_bytes_in_flight``): beyond
either an upload is refused at once with ``IngestBusy`` (the agent keeps it queued and retries after the hint), so the
cloud's memory does not grow with a backlog. Batches that arrive while others are being
stored are stored together (group commit: one transaction, one statement per table for
all of them, at most ``group_readings`` readings), so the per-transaction cost is shared
when many agents upload at once; ``writers`` transactions run at a time (1 on SQLite).
A group whose transaction fails is stored again batch by batch, so one batch's failure
is only that batch's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from fleet.decode import DecodedBatch, Rejection, decode_batch, decode_v1, printable
from fleet.errors import IngestBusy
from fleet.state import apply_batch
from printgate import metrics
from printgate.domain import Reading
from printgate.errors import ReadingsPayloadInvalid
from printgate.fleet_alerts import SupplyThresholds
from printgate.logs import get_logger
from printgate.store import outbox
from printgate.store import readings as rows
from printgate.store.db import Database, run_to_end
from printgate.wire import agent_pb2 as pb

log = get_logger("fleet.ingest")
DEFAULT_MAX_IN_FLIGHT = 64
DEFAULT_RETRY_AFTER_S = 2.0
DEFAULT_GROUP_READINGS = 5000
DEFAULT_MAX_BYTES_IN_FLIGHT = 64 * 1024 * 1024  # encoded batches being decoded or stored, all agents
DEFAULT_MAX_AGENT_BYTES_IN_FLIGHT = 16 * 1024 * 1024  # ... of one agent
DECODE_IN_THREAD_BYTES = 256 * 1024  # a batch this big is decoded off the event loop


@dataclass(frozen=True, slots=True)
class IngestResult:
    duplicate: bool
    stored: int = 0
    unmapped: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    conflict: str | None = None  # the batch id was delivered before with other content: refused


@dataclass(slots=True)
class _Pending:
    agent_id: str
    batch: DecodedBatch
    done: asyncio.Future[IngestResult]


class FleetIngest:
    """``await FleetIngest(db).ingest(agent_id, batch)``; ``IngestBusy`` when ``max_in_flight``
    batches are waiting or being stored already."""

    def __init__(self, db: Database, *, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
                 retry_after_s: float = DEFAULT_RETRY_AFTER_S, writers: int | None = None,
                 group_readings: int = DEFAULT_GROUP_READINGS,
                 max_bytes_in_flight: int = DEFAULT_MAX_BYTES_IN_FLIGHT,
                 max_agent_bytes_in_flight: int = DEFAULT_MAX_AGENT_BYTES_IN_FLIGHT) -> None:
        self._db = db
        self.max_in_flight = max_in_flight
        self.retry_after_s = retry_after_s
        self.max_writers = writers or (2 if db.dialect == "postgresql" else 1)
        self.group_readings = group_readings
        self.in_flight = 0
        self.max_bytes_in_flight = max_bytes_in_flight
        self.max_agent_bytes_in_flight = max_agent_bytes_in_flight
        self.bytes_in_flight = 0
        self._agent_bytes: dict[str, int] = {}
        self.refused_busy = 0
        self.groups = 0  # transactions run (for the benchmark: batches per transaction)
        self._queue: list[_Pending] = []
        self._writers = 0

    def _busy(self, why: str) -> IngestBusy:
        self.refused_busy += 1
        metrics.READINGS_BUSY.inc()
        return IngestBusy(f"fleet ingest is behind ({why}): keep the batch queued and send it again in "
                          f"{self.retry_after_s:g} s", retry_after_s=self.retry_after_s)

    async def ingest(self, agent_id: str, batch: pb.ReadingsBatch) -> IngestResult:
        """Bounded by batches, by encoded bytes over all agents and by the bytes of each agent in
        flight (a batch is always admitted when nothing else is in flight, so none starves)."""
        if self.in_flight >= self.max_in_flight:
            raise self._busy(f"{self.in_flight} batches waiting to be stored")
        size = batch.ByteSize()
        mine = self._agent_bytes.get(agent_id, 0)
        if mine and mine + size > self.max_agent_bytes_in_flight:
            raise self._busy(f"{mine} bytes of this agent's batches are still being stored")
        if self.bytes_in_flight and self.bytes_in_flight + size > self.max_bytes_in_flight:
            raise self._busy(f"{self.bytes_in_flight} bytes of batches are being stored")
        self.in_flight += 1
        self.bytes_in_flight += size
        self._agent_bytes[agent_id] = mine + size
        try:
            if size >= DECODE_IN_THREAD_BYTES:  # the portal and other agents stay served meanwhile
                decoded = await asyncio.to_thread(decode_batch, batch)
            else:
                decoded = decode_batch(batch)  # ReadingsPayloadInvalid: the whole batch is unreadable
            item = _Pending(agent_id, decoded, asyncio.get_running_loop().create_future())
            self._queue.append(item)
            if self._writers < self.max_writers:  # no free writer would take it: this caller writes
                self._writers += 1
                try:
                    await self._drain()
                finally:
                    self._writers -= 1
            return await item.done
        finally:
            self.in_flight -= 1
            self.bytes_in_flight -= size
            left = self._agent_bytes[agent_id] - size
            if left:
                self._agent_bytes[agent_id] = left
            else:
                del self._agent_bytes[agent_id]

    async def _drain(self) -> None:
        """Store queued batches, a group at a time, until none is left (no await between the
        emptiness check and leaving, so a batch queued meanwhile is never stranded). On
        PostgreSQL the writer keeps one connection while it drains (the pool's check-out ping,
        three round trips, once per drain rather than once per group); a failed group gives
        it back, and what follows takes a fresh one."""
        conn: AsyncConnection | None = None
        try:
            while self._queue:
                if conn is None and self._db.dialect == "postgresql":
                    try:
                        conn = await self._db.engine.connect()
                    except Exception:  # the group below fails alike on a pooled one, and is answered so
                        conn = None
                conn = await self._store_next(conn)
        finally:
            if conn is not None:
                await run_to_end(conn.close)

    async def _store_next(self, conn: AsyncConnection | None) -> AsyncConnection | None:
        """Store the next group; the connection to go on with (None: a fresh one)."""
        group: list[_Pending] = []
        size = 0
        while self._queue and (not group or size + len(self._queue[0].batch.readings) <= self.group_readings):
            item = self._queue.pop(0)
            group.append(item)
            size += len(item.batch.readings)
        self.groups += 1
        try:
            results = await store_group(self._db, [(p.agent_id, p.batch) for p in group], conn=conn)
        except asyncio.CancelledError:  # the writer is stopped (shutdown): no caller waits for ever
            for p in (*group, *self._queue):
                if not p.done.done():
                    p.done.set_exception(IngestBusy("fleet ingest stopped before storing the batch: send it "
                                                    "again", retry_after_s=self.retry_after_s))
            self._queue.clear()
            raise
        except Exception as exc:
            if conn is not None:  # whatever broke, the next group starts on a fresh connection
                await run_to_end(conn.close)
                conn = None
            if len(group) == 1:
                group[0].done.set_exception(exc)
                return conn
            for p in group:  # one batch's failure stays that batch's
                try:
                    p.done.set_result((await store_group(self._db, [(p.agent_id, p.batch)]))[0])
                except Exception as exc:
                    p.done.set_exception(exc)
            return conn
        for p, r in zip(group, results, strict=True):
            p.done.set_result(r)
        return conn

    async def answer(self, agent_id: str, batch: pb.ReadingsBatch) -> pb.Ack:
        """``ingest`` as the agent channel answers it: the acknowledgement, given once stored."""
        result = await self.ingest(agent_id, batch)
        if result.conflict is not None:
            raise ReadingsPayloadInvalid(result.conflict)
        return pb.Ack(id=printable(batch.batch_id), duplicate=result.duplicate, stored=result.stored,
                      rejected=[pb.ReadingRejection(position=r.position, reading_id=printable(r.reading_id),
                                                    reason=printable(r.reason))
                                for r in result.rejected])  # never fails on what a reading sent


async def ingest_payload(db: Database, agent_id: str, batch_id: str, payload: bytes) -> bool:
    """A version 1 (JSON) batch; True when stored now, False for a batch delivered before."""
    return not (await store_decoded(db, agent_id, decode_v1(batch_id, payload))).duplicate


async def ingest_batch(db: Database, agent_id: str, batch_id: str, readings: Sequence[Reading], *,
                       now: datetime | None = None) -> bool:
    """Already-decoded readings; True when stored now, False for a batch delivered before."""
    decoded = DecodedBatch(batch_id, 2, list(readings))
    return not (await store_decoded(db, agent_id, decoded, now=now)).duplicate


async def store_decoded(db: Database, agent_id: str, batch: DecodedBatch, *,
                        now: datetime | None = None) -> IngestResult:
    return (await store_group(db, [(agent_id, batch)], now=now))[0]


async def store_group(db: Database, batches: Sequence[tuple[str, DecodedBatch]], *,
                      now: datetime | None = None, conn: AsyncConnection | None = None) -> list[IngestResult]:
    """Store batches of one or more agents in one transaction (on ``conn`` when given, else on
    a pooled connection); a result per batch, in order."""
    received = now or datetime.now(UTC)
    for agent_id, batch in batches:
        metrics.READINGS_RECEIVED.inc(batch.received)
        if batch.rejected:
            metrics.READINGS_REJECTED.inc(len(batch.rejected))
            log.warning("readings.rejected", agent=agent_id, batch=batch.batch_id, count=len(batch.rejected),
                        reasons=[r.reason for r in batch.rejected[:5]])
    for attempt in range(3):
        try:
            results = await _store_once(db, batches, received, conn)
        except Exception as exc:  # a reading or alert raced with a concurrent batch: redo the transaction
            if not _is_unique_violation(exc) or attempt == 2:
                raise
            continue
        for (agent_id, batch), result in zip(batches, results, strict=True):
            if result.duplicate:
                continue
            metrics.READINGS_STORED.inc(result.stored)
            if result.unmapped:  # kept in the history (device_id null), never silently
                metrics.READINGS_UNMAPPED.labels(agent_id).inc(result.unmapped)
                log.warning("readings.unmapped", agent=agent_id, batch=batch.batch_id, count=result.unmapped,
                            hint="no device of the agent's site has these readings' serial or address; "
                                 "check the agent's inventory (printers found by SNMP become devices)")
        return results
    raise AssertionError("unreachable")


def _is_unique_violation(exc: BaseException) -> bool:
    """A unique key raced with a concurrent transaction: SQLAlchemy's ``IntegrityError``, or
    asyncpg's ``UniqueViolationError`` raised as is by ``COPY`` on the raw connection."""
    return isinstance(exc, IntegrityError) or getattr(exc, "sqlstate", None) == "23505"


async def _store_once(db: Database, batches: Sequence[tuple[str, DecodedBatch]],
                      received: datetime, conn: AsyncConnection | None = None) -> list[IngestResult]:
    async with db.transaction(conn) as s:
        keys = {(a, b.batch_id): len(b.readings) for a, b in batches}  # a batch twice in a group: once
        hashes = {(a, b.batch_id): b.content_hash for a, b in batches}
        # first (it begins the transaction): the reading ids stored before, of all these batches
        known = await rows.known_reading_ids(s, list({r.id for _, b in batches for r in b.readings}))
        claimed = await rows.claim_batches(s, [(a, b, n) for (a, b), n in keys.items()], received_at=received,
                                           hashes=hashes)
        recorded = await rows.batch_hashes(s, [k for k in keys if k not in claimed])
        conflicts = {k for k, h in recorded.items() if h is not None and hashes[k] is not None and h != hashes[k]}
        mine: set[tuple[str, str]] = set()
        live = []
        for agent_id, batch in batches:
            key = (agent_id, batch.batch_id)
            if key in claimed and key not in mine:
                mine.add(key)
                live.append((agent_id, batch))
        fresh: list[tuple[str, DecodedBatch, list[Reading]]] = []
        for agent_id, batch in live:
            new = [r for r in batch.readings if r.id not in known]  # re-sent in a new batch: stored once
            known.update(r.id for r in new)
            fresh.append((agent_id, batch, new))
        wanted: dict[str, tuple[set[str], set[str]]] = {}
        for agent_id, _, new in fresh:
            serials, ips = wanted.setdefault(agent_id, (set(), set()))
            serials.update(r.serial for r in new if r.serial)
            ips.update(r.ip for r in new)
        devices = await rows.site_devices(s, wanted)
        mapped: list[tuple[str, Reading]] = []
        history = []
        counts: dict[tuple[str, str], tuple[int, int]] = {}
        thresholds: dict[str, SupplyThresholds] = {}  # of the devices whose dealer set them
        for agent_id, batch, new in fresh:
            at_site = devices[agent_id]
            n_mapped = 0
            for r in new:
                device_id = (at_site.by_serial.get(r.serial) if r.serial else None) or at_site.by_ip.get(r.ip)
                history.append(rows.reading_row(r, agent_id=agent_id, batch_id=batch.batch_id, device_id=device_id))
                if device_id is not None:
                    mapped.append((device_id, r))
                    n_mapped += 1
                    if at_site.thresholds is not None:
                        thresholds[device_id] = at_site.thresholds
            counts[(agent_id, batch.batch_id)] = (len(new), len(new) - n_mapped)
        await rows.insert_readings(s, history)
        ids = sorted({d for d, _ in mapped})
        if ids:
            states = await rows.lock_states(s, ids)
            changes = apply_batch(mapped, states, await rows.open_alerts_of(s, ids), thresholds)
            for device_id, reading_id, current, lower in changes.counters_backwards:
                log.warning("readings.counter_backwards", device=device_id, reading=reading_id, page_count=current,
                            read=lower, hint="kept in the history; the current page count is not lowered")
            for device_id, reading_id, current_count, bogus in changes.counters_implausible:
                log.warning("readings.counter_implausible", device=device_id, reading=reading_id,
                            page_count=current_count, read=bogus,
                            hint="kept in the history; not applied (above 10^10 pages or faster than "
                                 "1000 pages a second since the current count)")
            await rows.upsert_states(s, changes.states)
            await rows.replace_supplies(s, changes.supplies)
            opened, cleared = await rows.write_alerts(s, changes.alerts)
            await _announce(s, opened, cleared)
    results = []
    reported: set[tuple[str, str]] = set()
    for agent_id, batch in batches:
        key = (agent_id, batch.batch_id)
        if key in conflicts:
            results.append(IngestResult(duplicate=True, conflict=(
                f"readings batch {batch.batch_id!r} was delivered before with different content: nothing "
                "stored; a batch id names one batch only (this agent must seal new readings under a new id)")))
        elif key in counts and key not in reported:
            reported.add(key)
            stored, unmapped = counts[key]
            results.append(IngestResult(duplicate=False, stored=stored, unmapped=unmapped, rejected=batch.rejected))
        else:  # delivered before: the same refusals, so a lost acknowledgement loses no dead letter
            results.append(IngestResult(duplicate=True, rejected=_refused_before(batch, known)))
    return results


def _refused_before(batch: DecodedBatch, stored: set[str]) -> list[Rejection]:
    """The refusals of a batch delivered before, from what is stored (``stored``: the ids of its
    readings the history holds): the readings it refuses now and did not store then, and any
    reading it would take now but did not store then (refused at first delivery, e.g. by the
    clock checks). The content hash vouches that it is the same batch."""
    out = [r for r in batch.rejected if r.reading_id not in stored]
    for i, r in enumerate(batch.readings):
        if r.id not in stored:
            n = batch.position_of(i)
            out.append(Rejection(n, r.id, f"reading #{n} was refused when this batch was first delivered "
                                          "(not stored)"))
    return sorted(out, key=lambda r: r.position)


async def _announce(s: AsyncSession, opened: Sequence[rows.TrackedAlert], cleared: Sequence[rows.TrackedAlert]) -> None:
    """Alert changes go to the outbox (webhooks) in the ingest's own transaction: an alert that
    opened or cleared is announced exactly when it is stored."""
    if not (opened or cleared):
        return
    owners = await rows.owners_of(s, [a.device_id for a in (*opened, *cleared)])
    for kind, alerts in ((outbox.ALERT_OPENED, opened), (outbox.ALERT_CLEARED, cleared)):
        for a in alerts:
            site, customer, dealer = owners[a.device_id]
            await outbox.enqueue_outbound(
                s, kind=kind, dealer_id=dealer, customer_id=customer, site_id=site, device_id=a.device_id, payload={
                    "alert_id": a.id, "device_id": a.device_id, "severity": a.alert.severity,
                    "code": a.alert.code, "group": a.alert.group, "description": a.alert.description,
                    "raised_at": a.raised_at.isoformat(),
                    "cleared_at": a.cleared_at.isoformat() if a.cleared_at else None})
