"""Printer monitoring in the running agent: poll -> local queue -> batched upload.

Readings go to the local SQLite queue first (``agent.readings_queue``); an
upload loop sends sealed batches over the cloud channel and acknowledges them
only when the cloud did, so nothing is lost while the cloud is away. The set of
polled printers follows every discovery sweep.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from agent.polling import PolledDevice, Poller, PollSchedule
from agent.readings_queue import ReadingsQueue, UploadReadings, grpc_uploader
from agent.snmp.transport import SnmpClient, SnmpTarget
from printgate.domain import DiscoveryResult, SnmpCredential
from printgate.lifecycle import Service
from printgate.logs import get_logger
from printgate.supervisor import Supervisor

log = get_logger("agent.monitoring")

class Monitoring(Service):
    """Owns the poller, the queue and the upload loop. ``async with Monitoring(...)``."""

    def __init__(
        self,
        *,
        client: SnmpClient,
        queue: ReadingsQueue,
        upload_readings: UploadReadings,
        port: int,
        credentials: Sequence[SnmpCredential],
        schedule: PollSchedule = PollSchedule(),
        upload_interval_s: float = 10.0,
        supervisor: Supervisor | None = None,
    ) -> None:
        self._client = client
        self.queue = queue
        self._uploader = grpc_uploader(upload_readings)
        self._port = port
        self._credentials = list(credentials)
        self._schedule = schedule
        self._upload_interval = upload_interval_s
        self._poller: Poller | None = None
        self._polled: frozenset[PolledDevice] = frozenset()
        self._upload_task: asyncio.Task[None] | None = None
        self._supervisor = supervisor  # runs the upload loop (restarts it if it fails) when given
        self.last_upload: datetime | None = None

    async def start(self) -> None:
        if self._supervisor is not None:
            self._supervisor.add("readings-upload", self._upload_loop)
        else:
            self._upload_task = asyncio.create_task(self._upload_loop(), name="readings-upload")

    async def aclose(self) -> None:
        if self._upload_task is not None:
            self._upload_task.cancel()
            await asyncio.gather(self._upload_task, return_exceptions=True)
        if self._poller is not None:
            await self._poller.aclose()

    async def pending(self) -> int:
        return await self.queue.pending()

    async def follow_discovered(self, printers: Sequence[DiscoveryResult]) -> None:
        """Poll the printers of the latest sweep, each with the credential that answered it.

        The polled device carries the serial and the sysObjectID discovery
        read: the sysObjectID picks the vendor profile (its page counters).
        """
        await self.follow([
            PolledDevice(
                ip=p.ip, target=SnmpTarget(p.ip, self._port, self._credential_of(p.credential)),
                serial=p.identity.serial if p.identity else None,
                sys_object_id=p.identity.sys_object_id if p.identity else None,
            )
            for p in printers
        ])

    async def follow(self, devices: Sequence[PolledDevice]) -> None:
        """Poll exactly these devices from now on (a changed device restarts the poller)."""
        wanted = frozenset(devices)
        if wanted == self._polled and self._poller is not None:
            return
        if self._poller is not None:
            await self._poller.aclose()
        self._poller = Poller(self._client, list(devices), self.queue, self._schedule)
        await self._poller.start()
        self._polled = wanted
        log.info("monitoring.following", printers=len(devices))

    def _credential_of(self, label: str | None) -> SnmpCredential:
        for credential in self._credentials:
            if credential.label == label:
                return credential
        return self._credentials[0]

    async def upload_now(self) -> int:
        sent = await self.queue.flush(self._uploader)
        if sent:
            self.last_upload = datetime.now(UTC)
        return sent

    async def _upload_loop(self) -> None:
        while True:
            # the cloud's ingest behind: wait as long as it asked (the readings stay queued)
            await asyncio.sleep(max(self._upload_interval, self.queue.retry_after_s or 0.0))
            await self.upload_now()
