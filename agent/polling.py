"""Polling: counters, supplies, alerts/status per device, on schedules.

``poll_device`` asks for the columns of the requested kinds in one
multi-column GETBULK walk (plus the vendor profile's counter scalars) and
parses them; any SNMP failure or bad value becomes an entry in
``Reading.errors`` and the poll still returns. ``Poller`` owns the periodic
tasks and writes every reading to the local queue first.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from agent.snmp import oids
from agent.snmp.parsing import OUT_OF_RANGE, alerts_from, counters_from, status_from, supplies_from
from agent.snmp.profiles import VendorProfile, profile_for
from agent.snmp.transport import SnmpClient, SnmpTarget
from agent.snmp.values import SnmpValue
from printgate.domain import (
    CounterValue,
    PrinterAlert,
    PrinterStatus,
    Reading,
    ReadingKind,
    SupplyLevel,
)
from printgate.errors import SnmpError
from printgate.lifecycle import Service
from printgate.logs import get_logger

log = get_logger("agent.polling")

RESPONSE_VARBINDS = 60  # keep a GETBULK answer under typical agents' limits

COLUMNS: dict[ReadingKind, tuple[str, ...]] = {
    ReadingKind.COUNTERS: oids.COUNTER_COLUMNS,
    ReadingKind.SUPPLIES: oids.SUPPLY_COLUMNS,
    ReadingKind.ALERTS: oids.ALERT_COLUMNS,
}


@dataclass(frozen=True, slots=True)
class PolledDevice:
    ip: str
    target: SnmpTarget
    serial: str | None = None
    sys_object_id: str | None = None


@dataclass(frozen=True, slots=True)
class PollSchedule:
    counters_seconds: float = 3600.0
    supplies_seconds: float = 300.0
    alerts_seconds: float = 300.0

    def interval(self, kind: ReadingKind) -> float:
        return {
            ReadingKind.COUNTERS: self.counters_seconds,
            ReadingKind.SUPPLIES: self.supplies_seconds,
            ReadingKind.ALERTS: self.alerts_seconds,
        }[kind]


def columns_for(kinds: Iterable[ReadingKind]) -> list[str]:
    return list(dict.fromkeys(c for k in kinds for c in COLUMNS[k]))


def reading_from(
    varbinds: dict[str, SnmpValue],
    *,
    ip: str,
    kinds: Sequence[ReadingKind],
    serial: str | None,
    profile: VendorProfile | None,
    taken_at: datetime,
    errors: Sequence[str] = (),
    reading_id: str | None = None,
) -> Reading:
    """Pure: turn fetched varbinds into a Reading (tested on .snmprec data)."""
    errs = list(errors)
    counters: list[CounterValue] = []
    supplies: list[SupplyLevel] = []
    alerts: list[PrinterAlert] = []
    status: PrinterStatus | None = None
    if ReadingKind.COUNTERS in kinds:
        counters, e = counters_from(varbinds, profile)
        errs += e
    if ReadingKind.SUPPLIES in kinds:
        supplies, e = supplies_from(varbinds)
        errs += e
    if ReadingKind.ALERTS in kinds:
        alerts, e = alerts_from(varbinds)
        errs += e
        status, e = status_from(varbinds)
        errs += e
    return Reading(
        id=reading_id or uuid.uuid4().hex, ip=ip, taken_at=taken_at, kinds=tuple(kinds),
        serial=serial, counters=tuple(counters), supplies=tuple(supplies),
        alerts=tuple(alerts), status=status, errors=tuple(errs),
    )


async def poll_device(
    client: SnmpClient,
    device: PolledDevice,
    kinds: Sequence[ReadingKind] = tuple(ReadingKind),
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Reading:
    taken_at = now()
    cols = columns_for(kinds)
    profile = profile_for(device.sys_object_id)
    varbinds: dict[str, SnmpValue] = {}
    errors: list[str] = []
    try:
        varbinds.update(
            await client.walk(device.target, cols, max_repetitions=max(1, RESPONSE_VARBINDS // len(cols)))
        )
        if ReadingKind.COUNTERS in kinds and profile.counters:
            varbinds.update(await client.get(device.target, [o for _, o in profile.counters]))
    except SnmpError as exc:
        errors.append(f"snmp: {exc.message}")
    reading = reading_from(
        varbinds, ip=device.ip, kinds=kinds, serial=device.serial, profile=profile,
        taken_at=taken_at, errors=errors,
    )
    refused = [e for e in reading.errors if OUT_OF_RANGE in e]
    if refused:  # one value left out of this reading (the rest of the poll is sent as usual)
        log.warning("poll.value_out_of_range", ip=device.ip, reading=reading.id, values=refused[:5],
                    hint="the device reports a value the readings contract cannot carry; it is not sent")
    return reading


class ReadingSink(Protocol):
    async def put(self, reading: Reading) -> None: ...


class Poller(Service):
    """Runs one periodic task per reading kind over all devices; owner of its tasks."""

    def __init__(
        self,
        client: SnmpClient,
        devices: Sequence[PolledDevice],
        sink: ReadingSink,
        schedule: PollSchedule = PollSchedule(),
        *,
        concurrency: int = 32,
    ) -> None:
        self._client = client
        self._devices = list(devices)
        self._sink = sink
        self._schedule = schedule
        self._sem = asyncio.Semaphore(concurrency)
        self._tasks: list[asyncio.Task[None]] = []
        self.rounds = 0

    async def start(self) -> None:
        for kind in ReadingKind:
            self._tasks.append(asyncio.create_task(self._loop(kind), name=f"poll-{kind}"))

    async def poll_round(self, kinds: Sequence[ReadingKind]) -> list[Reading]:
        async def one(d: PolledDevice) -> Reading:
            async with self._sem:
                reading = await poll_device(self._client, d, kinds)
            await self._sink.put(reading)
            return reading

        readings = await asyncio.gather(*(one(d) for d in self._devices))
        self.rounds += 1
        return list(readings)

    async def _loop(self, kind: ReadingKind) -> None:
        interval = self._schedule.interval(kind)
        while True:
            started = time.monotonic()
            try:
                await self.poll_round([kind])
            except Exception as exc:  # a failed round must not stop the schedule
                log.error("poll.round_failed", kind=str(kind), error=repr(exc))
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    async def aclose(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
