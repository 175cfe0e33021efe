"""The running agent: discover printers, report them, open tunnels on command.

The runtime only composes: discovery (``agent.discovery``), the cloud channel
(``agent.channel``), the tunnel client (``agent.tunnel``) and the identity
verifier (``agent.verify``) come in through the constructor, so the same
runtime serves ``printgate agent run`` and the demo.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from agent.ews_probe import EwsEndpoint, EwsHysteresis, EwsNotFound, probe_ews
from agent.inventory_file import load_inventory, save_inventory
from agent.status_file import StatusFile
from agent.tunnel.reconnect import keep_open
from printgate import metrics
from printgate.domain import DeviceIdentity, DiscoveryResult, DiscoveryStatus, DwaTarget
from printgate.errors import TUNNEL_FAILED, PrintgateError
from printgate.lifecycle import Service
from printgate.logs import get_logger
from printgate.supervisor import Supervisor
from printgate.wire import agent_pb2 as pb
from printgate.wire import convert

log = get_logger("agent.runtime")


class Channel(Protocol):
    state: str

    async def upload_inventory(self, devices: Sequence[pb.DiscoveredDevice]) -> None: ...
    def commands(self) -> AsyncIterator[Any]: ...
    async def report_result(
        self, command_id: str, *, ok: bool, error_code: str = "", message: str = ""
    ) -> None: ...
    async def heartbeat(self, *, queue_length: int = 0, printers: int = 0,
                        relay_refusals: Sequence[pb.RelayRefusal] = (),
                        health: pb.HeartbeatRequest | None = None) -> int: ...
    def renewal_due(self) -> bool: ...
    async def renew_certificate(self) -> Any: ...


class PrinterFollower(Protocol):
    """What monitors printers (``agent.monitoring.Monitoring``)."""

    last_upload: datetime | None

    async def follow_discovered(self, printers: Sequence[DiscoveryResult]) -> None: ...
    async def pending(self) -> int: ...


class QueueState(Protocol):
    """What the readings queue tells about itself (``agent.readings_queue.ReadingsQueue``)."""

    degraded: str | None

    @property
    def queued_bytes(self) -> int: ...
    @property
    def dropped(self) -> int: ...
    def drops(self) -> Sequence[Any]: ...  # ``Drop`` items
    async def oldest(self) -> datetime | None: ...
    async def delivery_problem(self, *, last_delivery: datetime | None) -> str | None: ...


class Tunnel(Protocol):
    async def aclose(self) -> None: ...
    async def wait_closed(self) -> None: ...
    @property
    def is_closed(self) -> bool: ...
    @property
    def closed_cleanly(self) -> bool: ...


Discover = Callable[[], Awaitable[Sequence[DiscoveryResult]]]  # printers and exclusions
Verify = Callable[[], Awaitable[None]]
OnRefused = Callable[[str, str], None]  # (channel kind, detail) the relay tried and the agent refused
OpenTunnel = Callable[[pb.OpenTunnel, Verify | None, OnRefused], Awaitable[Tunnel]]
MAX_PENDING_REFUSALS = 200  # kept for the gateway while it cannot be reached (oldest dropped)
REFUSALS_PER_HEARTBEAT = 50
CLOUD_TASKS = ("readings-upload", "heartbeat")  # wait (not fail) while the cloud is away
MakeVerifier = Callable[[pb.OpenTunnel, str], Verify]  # (command, command id)
FindEws = Callable[[str], Awaitable[EwsEndpoint | EwsNotFound | None]]


def inventory_entry(found: DiscoveryResult, ews: EwsEndpoint | None, ews_probe: str = "") -> pb.DiscoveredDevice:
    """One inventory line: the sweep's result plus where its web server answered (or, in
    ``ews_probe``, each port tried and how it failed)."""
    if ews is not None and ews.tls_fingerprint:
        identity = replace(found.identity or DeviceIdentity(), tls_fingerprint=ews.tls_fingerprint)
        found = replace(found, identity=identity)
    entry = convert.discovered_to_wire(
        found, ews_port=ews.port if ews else 0, ews_scheme=ews.scheme if ews else ""
    )
    if ews is None and ews_probe:
        entry.ews_probe = ews_probe[:1000]
    return entry


class AgentRuntime(Service):
    """Owns the agent's loops; ``async with`` or ``start()``/``aclose()``."""

    def __init__(
        self,
        *,
        channel: Channel,
        discover: Discover,
        open_tunnel: OpenTunnel,
        make_verifier: MakeVerifier | None = None,
        find_ews_endpoint: FindEws = probe_ews,
        scan_interval_s: float = 300.0,
        monitoring: PrinterFollower | None = None,
        status_path: Path | None = None,
        heartbeat_s: float = 30.0,
        supervisor: Supervisor | None = None,
        queue: QueueState | None = None,
        inventory_path: Path | None = None,
        status_s: float = 5.0,
        new_device_watch_s: float | None = None,
        ews_hysteresis: EwsHysteresis | None = None,
    ) -> None:
        self._channel = channel
        self._discover = discover
        self._open_tunnel = open_tunnel
        self._make_verifier = make_verifier
        self._find_ews = find_ews_endpoint
        self._scan_interval = scan_interval_s
        self._monitoring = monitoring
        self._status = StatusFile(status_path) if status_path is not None else None
        self._heartbeat_s = heartbeat_s
        self._status_s = status_s
        self._own_supervisor = supervisor is None
        self.supervisor = supervisor if supervisor is not None else Supervisor("agent")
        self._queue = queue
        self._inventory_path = inventory_path
        self._tunnels: dict[str, Tunnel] = {}
        self._keepers: dict[str, asyncio.Task[None]] = {}  # session -> reconnect-on-loss task
        self._refusals: list[pb.RelayRefusal] = []  # not yet reported to the gateway
        self._report_now = asyncio.Event()  # a refusal wakes the heartbeat early
        self.last_scan: datetime | None = None
        self.printers: list[pb.DiscoveredDevice] = []
        self._rescan = asyncio.Event()  # a "rescan now" command wakes the discovery loop
        self._watch_s = new_device_watch_s  # between sweeps: a light look for new printers this often
        # a web page that stops answering is kept for 3 sweeps over >= 2 scan intervals, not dropped at once
        self._ews = ews_hysteresis or EwsHysteresis(misses=3, min_span_s=2 * scan_interval_s)
        self._ews_notes: dict[str, str] = {}  # ip -> how the last probe of its web page failed
        # ip -> (its last answering sweep result and inventory line, sweeps in a row it did not answer)
        self._followed: dict[str, tuple[DiscoveryResult, pb.DiscoveredDevice | None, int]] = {}

    async def start(self) -> None:
        """Poll the printers this agent knew (its own inventory file) at once, then run the loops."""
        if self._inventory_path is not None:
            saved = load_inventory(self._inventory_path)
            for e in saved.entries:  # the web pages found before this start stay until they fail for good
                if e.ews_port > 0:
                    self._ews.seed(EwsHysteresis.key(e.ip, e.serial, e.mac),
                                   EwsEndpoint(e.ews_port, e.ews_scheme, e.tls_fingerprint or None))
            self.printers = [e for e in saved.entries if e.status == pb.DEVICE_STATUS_PRINTER]
            lines = {e.ip: e for e in self.printers}
            self._followed = {p.ip: (p, lines.get(p.ip), 0) for p in saved.printers}
            if saved.printers and self._monitoring is not None:
                await self._monitoring.follow_discovered(saved.printers)
                log.info("agent.polling_saved_inventory", printers=len(saved.printers))
        sup = self.supervisor
        sup.add("scan", self._scan_loop)
        sup.add("commands", self._command_loop)
        sup.add("heartbeat", self._heartbeat_loop)
        if self._status is not None:
            sup.add("status", self._status_loop)
        if self._own_supervisor:
            await sup.start()

    async def aclose(self) -> None:
        if self._own_supervisor:
            await self.supervisor.aclose()
        keepers = list(self._keepers.values())
        for keeper in keepers:
            keeper.cancel()
        await asyncio.gather(*keepers, return_exceptions=True)
        for sid in list(self._tunnels):
            await self._close_tunnel(sid, "agent stopping")

    @property
    def tunnel_sessions(self) -> list[str]:
        """Sessions whose tunnel is open (or being reconnected)."""
        return sorted(self._tunnels)

    # ---- discovery -------------------------------------------------------
    async def scan_once(self) -> list[pb.DiscoveredDevice]:
        found = await self._discover()
        entries: list[pb.DiscoveredDevice] = []
        for item in found:
            if item.status not in _REPORTED:  # a silent address is no inventory line
                continue
            ews = await self._web_page_of(item) if _is_printer(item) else None
            entries.append(inventory_entry(item, ews, self._ews_notes.get(item.ip, "")))
        answering = [f for f in found if _is_printer(f)]
        kept = self._keep_silent_printers(found, entries)
        printers = answering + [p for p, _line in kept]
        # polling follows the sweep before (and whether or not) the cloud hears of it
        self.printers = [e for e in entries if e.status == pb.DEVICE_STATUS_PRINTER]
        self.printers += [line for _p, line in kept if line is not None]
        if self._monitoring is not None:
            await self._monitoring.follow_discovered(printers)
        if self._inventory_path is not None:
            save_inventory(self._inventory_path, printers, [*entries, *(line for _p, line in kept if line)])
        self.last_scan = datetime.now(UTC)
        await self._channel.upload_inventory(entries)
        log.info("agent.scan_reported", printers=len(self.printers), total=len(entries))
        return entries

    def _keep_silent_printers(
        self, found: Sequence[DiscoveryResult], entries: Sequence[pb.DiscoveredDevice]
    ) -> list[tuple[DiscoveryResult, pb.DiscoveredDevice | None]]:
        """Printers polled before that timed out in this sweep: still polled, up to
        ``SILENT_SWEEPS_KEPT`` sweeps in a row (a busy or sleeping printer, a lost datagram,
        must not stop its polling until the next sweep). One that answers as a non-printer,
        or is no longer a target, is dropped at once."""
        lines = {e.ip: e for e in entries}
        silent = {f.ip for f in found if f.status is DiscoveryStatus.UNREACHABLE}
        answering = {f.ip: f for f in found if _is_printer(f)}
        kept: list[tuple[DiscoveryResult, pb.DiscoveredDevice | None]] = []
        for ip, (last, line, missed) in list(self._followed.items()):
            if ip in answering:
                continue
            if ip in silent and missed < SILENT_SWEEPS_KEPT:
                self._followed[ip] = (last, line, missed + 1)
                kept.append((last, line))
            else:
                del self._followed[ip]
        for ip, result in answering.items():
            self._followed[ip] = (result, lines.get(ip), 0)
        if kept:
            log.warning("agent.printers_not_answering", printers=[p.ip for p, _ in kept],
                        action=f"still polled; dropped after {SILENT_SWEEPS_KEPT + 1} silent sweeps in a row")
        return kept

    async def _web_page_of(self, item: DiscoveryResult) -> EwsEndpoint | None:
        """Probe the printer's web page; a failing one is kept until it failed for good."""
        probed = await self._find_ews(item.ip)
        key = EwsHysteresis.key(item.ip, item.identity.serial if item.identity else None,
                                item.identity.mac if item.identity else None)
        kept = self._ews.observe(key, probed)
        if isinstance(probed, EwsEndpoint):
            self._ews_notes.pop(item.ip, None)
            return kept
        why = probed.describe() if isinstance(probed, EwsNotFound) else "no candidate answered"
        self._ews_notes[item.ip] = why
        if kept is not None:
            log.warning("agent.ews_probe_failed", ip=item.ip, tried=why, misses=self._ews.misses_of(key),
                        kept=f"{kept.port}/{kept.scheme}",
                        action=f"still reported; given up after {self._ews.misses} failed sweeps in a row")
        else:
            log.warning("agent.ews_not_found", ip=item.ip, tried=why,
                        hint="add the printer's web port to ews_candidates in agent.toml")
        return kept

    async def _scan_loop(self) -> None:
        while True:
            try:
                await self.scan_once()
            except (PrintgateError, OSError) as exc:
                log.warning("agent.scan_failed", error=str(exc))
            await self._until_next_scan()

    def request_rescan(self) -> None:
        """Sweep now instead of at the next interval (the portal's signed "rescan now")."""
        self._rescan.set()

    async def _until_next_scan(self) -> None:
        """Wait for the next sweep: the interval, a rescan request, or a new printer the watch saw."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._scan_interval
        while (left := deadline - loop.time()) > 0:
            step = min(left, self._watch_s) if self._watch_s else left
            try:
                async with asyncio.timeout(step):
                    await self._rescan.wait()
            except TimeoutError:
                if self._watch_s and deadline - loop.time() > 0 and await self._new_printer_seen():
                    return
                continue
            self._rescan.clear()
            log.info("agent.rescan_now")
            return

    async def _new_printer_seen(self) -> bool:
        """A light sweep between full ones: is a printer answering that the inventory lacks?"""
        try:
            found = await self._discover()
        except (PrintgateError, OSError) as exc:
            log.warning("agent.watch_failed", error=str(exc))
            return False
        known = {p.ip for p in self.printers}
        new = sorted(f.ip for f in found if _is_printer(f) and f.ip not in known)
        if new:
            log.info("agent.new_printers_seen", ips=new[:20], count=len(new))
        return bool(new)

    # ---- heartbeat, certificate renewal, status file ------------------
    async def _heartbeat_loop(self) -> None:
        while True:
            queued = await self._monitoring.pending() if self._monitoring else 0
            refusals = self._refusals[:REFUSALS_PER_HEARTBEAT]
            self._report_now.clear()  # a refusal from now on brings the next heartbeat at once
            try:
                await self._channel.heartbeat(queue_length=queued, printers=len(self.printers),
                                              relay_refusals=refusals, health=await self.health_report())
                del self._refusals[:len(refusals)]
                if self._channel.renewal_due():
                    await self._channel.renew_certificate()
                    log.info("agent.certificate_renewed")
            except (PrintgateError, OSError) as exc:
                log.warning("agent.heartbeat_failed", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._report_now.wait(), self._heartbeat_s)

    async def health_report(self) -> pb.HeartbeatRequest:
        """The health fields of a heartbeat: tasks, oldest queued reading, drops, degradation."""
        report = pb.HeartbeatRequest(tasks=[
            pb.TaskHealth(name=h.name, state=h.state, restarts=h.restarts, last_error=h.last_error or "",
                          last_error_at_ms=int(h.last_error_at.timestamp() * 1000) if h.last_error_at else 0)
            for h in self.supervisor.health()
        ])
        if self._queue is not None:
            oldest = await self._queue.oldest()
            report.oldest_queued_ms = int(oldest.timestamp() * 1000) if oldest else 0
            report.queued_bytes = self._queue.queued_bytes
            delivery = await self._queue.delivery_problem(
                last_delivery=self._monitoring.last_upload if self._monitoring else None)
            report.degraded = "; ".join(x for x in (self._queue.degraded, delivery) if x)
            report.drops.extend(
                pb.ReadingsDrop(ip=d.ip, kind=d.kind, reason=d.reason, count=d.count,
                                first_at_ms=int(d.first_at.timestamp() * 1000),
                                last_at_ms=int(d.last_at.timestamp() * 1000))
                for d in self._queue.drops()
            )
        return report

    async def _status_loop(self) -> None:
        """Write the status file; a change of health (degraded, a task failing) brings a heartbeat at once."""
        reported: tuple[object, ...] | None = None
        while True:
            await self.write_status()
            now = (self._queue.degraded if self._queue is not None else None,
                   tuple(h.name for h in self.supervisor.health() if h.state in ("backoff", "degraded")))
            if reported is not None and now != reported:
                self._report_now.set()
            reported = now
            await asyncio.sleep(self._status_s)

    def relay_refused(self, session_id: str, kind: str, detail: str) -> None:
        """A channel the relay tried to open on ``session_id``'s tunnel was refused: report it."""
        self._refusals.append(pb.RelayRefusal(session_id=session_id, kind=kind, detail=detail[:500],
                                              at_ms=int(time.time() * 1000)))
        del self._refusals[:-MAX_PENDING_REFUSALS]
        self._report_now.set()

    def _mark_waiting_for_cloud(self, queued: int) -> None:
        """The tasks that need the cloud say "waiting for cloud" (healthy, not an error) while the
        channel reconnects (the cloud restarting, unreachable); their calls wait and resume by
        themselves (gRPC wait_for_ready with back-off), nothing is lost meanwhile."""
        state = self._channel.state
        up = state in ("connected", "mqtt-only")
        last_error = getattr(self._channel, "last_error", None)
        why = f"waiting for cloud (channel {state}" + (f", last error {last_error})" if last_error else ")")
        for name in CLOUD_TASKS:
            if up:
                self.supervisor.recovered(name)
            elif name != "readings-upload" or queued:
                self.supervisor.waiting(name, why)

    async def write_status(self) -> None:
        """Write ``status.json`` (what ``printgate agent status`` shows)."""
        if self._status is None:
            return
        queued = await self._monitoring.pending() if self._monitoring else 0
        last = self._monitoring.last_upload if self._monitoring else None
        oldest = await self._queue.oldest() if self._queue is not None else None
        status = {
            "written_at": datetime.now(UTC).isoformat(),
            "pid": os.getpid(),
            "channel": self._channel.state,
            "degraded": self._queue.degraded if self._queue is not None else None,
            "last_upload": last.isoformat() if last else None,
            "last_scan": self.last_scan.isoformat() if self.last_scan else None,
            "queue_length": queued,
            "queued_bytes": self._queue.queued_bytes if self._queue is not None else 0,
            "oldest_queued": oldest.isoformat() if oldest else None,
            "dropped": self._queue.dropped if self._queue is not None else 0,
            "drops": [d.to_dict() for d in self._queue.drops()] if self._queue is not None else [],
            "tasks": [h.to_dict() for h in self.supervisor.health()],
            "printers": [{"ip": p.ip, "model": p.model, "serial": p.serial,
                          "web_page": f"{p.ews_port}/{p.ews_scheme}" if p.ews_port > 0
                          else f"none found ({self._ews_notes.get(p.ip, 'not probed yet')})"}
                         for p in self.printers],
            "tunnels": self.tunnel_sessions,
        }
        self._mark_waiting_for_cloud(queued)
        if self._queue is not None:  # batches set aside, nothing delivered for long: not healthy
            delivery = await self._queue.delivery_problem(last_delivery=last)
            status["delivery_problem"] = delivery
            if delivery:
                self.supervisor.degrade("readings-upload", delivery)
        status["tasks"] = [h.to_dict() for h in self.supervisor.health()]
        if self._status.write(status):
            self.supervisor.recovered("status")
        else:  # a visible task error (heartbeat, metrics), not just one log line
            self.supervisor.degrade("status", self._status.last_error or "status file cannot be written")
        metrics.AGENT_QUEUE_LENGTH.set(queued)
        metrics.AGENT_QUEUE_BYTES.set(self._queue.queued_bytes if self._queue is not None else 0)
        metrics.AGENT_DEGRADED.set(1 if status["degraded"] else 0)
        if self._queue is not None:
            for reason in {d.reason for d in self._queue.drops()}:
                metrics.AGENT_READINGS_DROPPED.labels(reason).set(
                    sum(d.count for d in self._queue.drops() if d.reason == reason))

    # ---- commands ----------------------------------------------------------
    async def _command_loop(self) -> None:
        async for command in self._channel.commands():
            body = _command_body(command)
            if body is None:
                continue
            kind = body.WhichOneof("body")
            if kind == "open_tunnel":
                await self._handle_open(body.id, body.open_tunnel)
            elif kind == "close_tunnel":
                await self._close_tunnel(body.close_tunnel.session_id, body.close_tunnel.reason)
                await self._report(body.id, ok=True)
            elif kind == "rescan":
                log.info("agent.rescan_requested", by=body.rescan.requested_by)
                self.request_rescan()
                await self._report(body.id, ok=True)

    async def _handle_open(self, command_id: str, cmd: pb.OpenTunnel) -> None:
        existing = self._tunnels.get(cmd.session_id)
        if existing is not None and not existing.is_closed:
            # the gateway's resume crossed our own reconnect: the session has its tunnel
            await self._report(command_id, ok=True)
            return
        keeper = self._keepers.pop(cmd.session_id, None)
        if keeper is not None:  # stop reconnecting with the old credential; this command brings a new one
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
        try:
            verify = self._make_verifier(cmd, command_id) if self._make_verifier else None
            tunnel = await self._open_tunnel(cmd, verify, self._refusal_reporter(cmd.session_id))
        except PrintgateError as exc:
            log.warning("agent.tunnel_refused", session=cmd.session_id, error=exc.message)
            await self._report(command_id, ok=False, code=exc.code, message=exc.message)
            return
        except OSError as exc:
            log.warning("agent.tunnel_failed", session=cmd.session_id, error=str(exc))
            await self._report(command_id, ok=False, code=TUNNEL_FAILED, message=str(exc))
            return
        self._tunnels[cmd.session_id] = tunnel
        self._keepers[cmd.session_id] = asyncio.create_task(
            self._keep_open(cmd, tunnel, verify), name=f"agent-tunnel-{cmd.session_id}"
        )
        log.info("agent.tunnel_open", session=cmd.session_id, target=cmd.target_ip)
        await self._report(command_id, ok=True)

    async def _keep_open(self, cmd: pb.OpenTunnel, tunnel: Tunnel, verify: Verify | None) -> None:
        sid = cmd.session_id

        def adopt(new: Tunnel) -> None:
            self._tunnels[sid] = new

        try:
            await keep_open(
                sid, tunnel, reopen=lambda: self._open_tunnel(cmd, verify, self._refusal_reporter(sid)),
                is_current=lambda t: self._tunnels.get(sid) is t, replace=adopt,
                expires_at=cmd.expires_at_ms / 1000 if cmd.expires_at_ms else time.time() + 3600,
            )
        finally:
            if self._keepers.get(sid) is asyncio.current_task():
                del self._keepers[sid]
            current = self._tunnels.get(sid)
            if current is not None and current.is_closed:  # gone for good: forget it
                del self._tunnels[sid]

    def _refusal_reporter(self, session_id: str) -> OnRefused:
        return lambda kind, detail: self.relay_refused(session_id, kind, detail)

    async def _report(self, command_id: str, *, ok: bool, code: str = "", message: str = "") -> None:
        try:
            await self._channel.report_result(command_id, ok=ok, error_code=code, message=message)
        except (PrintgateError, OSError) as exc:
            log.warning("agent.report_failed", command=command_id, error=str(exc))

    async def _close_tunnel(self, session_id: str, reason: str) -> None:
        keeper = self._keepers.pop(session_id, None)
        if keeper is not None:
            keeper.cancel()
        tunnel = self._tunnels.pop(session_id, None)
        if tunnel is not None:
            await tunnel.aclose()
            log.info("agent.tunnel_closed", session=session_id, reason=reason)


SILENT_SWEEPS_KEPT = 2  # a followed printer silent in this many sweeps in a row is still polled


_REPORTED = (DiscoveryStatus.PRINTER, DiscoveryStatus.EXCLUDED)


def _is_printer(result: DiscoveryResult) -> bool:
    return result.status is DiscoveryStatus.PRINTER


def target_of(cmd: pb.OpenTunnel) -> DwaTarget:
    return DwaTarget(cmd.target_ip, cmd.target_port, cmd.target_scheme or "http")


def _command_body(command: Any) -> pb.Command | None:
    """Accept a verified-command wrapper (``.command``) or a bare ``Command``."""
    if isinstance(command, pb.Command):
        return command
    inner = getattr(command, "command", None)
    return inner if isinstance(inner, pb.Command) else None
