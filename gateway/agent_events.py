"""What the gateway does with what agents report: inventory, readings, presence, command results.

The business rules (plugged into the agent channel as its ``ChannelHandlers``):

- an inventory whose printer at a known IP answers with another identity marks the
  known device unverified (fail closed: no tunnel to it until re-verified) and audits it;
- an agent that goes offline and does not come back within the grace period loses its
  sessions; one that comes back within it gets its tunnel-less sessions reopened;
- an agent's failing command result ends the session it belongs to, audited.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, Protocol

from fleet.ingest import FleetIngest
from gateway.channel.handlers import ChannelHandlers
from printgate import metrics
from printgate.domain import AuditEventIn, Outcome, SessionId, event_types
from printgate.errors import IDENTITY_MISMATCH
from printgate.interfaces import AuditSink
from printgate.logs import get_logger
from printgate.store import agent_health, devices, nodes, tenants
from printgate.store.db import Database
from printgate.wire import agent_pb2 as pb
from printgate.wire import convert

log = get_logger("gateway.agent_events")
MAX_HEALTH_ITEMS = 1000  # tasks and drop lines kept from one heartbeat
RESUME_DELAY_S = 1.0  # after an agent's return, before its tunnel-less sessions are reopened
TASK_ATTEMPTS = 6  # a failing per-agent task is tried again this often (back-off), then audited as given up
TASK_RETRY_S = 1.0  # first back-off; doubles, at most TASK_RETRY_MAX_S
TASK_RETRY_MAX_S = 30.0
# what is lost when a per-agent task gives up (said in the audit record)
TASK_LOSS = {"loss-check": "the offline agent's sessions were not ended by the gateway (they end at expiry)",
             "resume": "the agent's tunnel-less sessions were not reopened (technicians must start again)"}


class AgentSessions(Protocol):
    """The part of the session broker agent events act on."""

    async def resume_tunnels(self, agent_id: str) -> int: ...
    async def drop_orphans(self, agent_id: str) -> int: ...
    async def agent_lost(self, agent_id: str) -> None: ...
    def command_result(self, command_id: str, *, ok: bool, message: str) -> str | None: ...
    async def close_session(self, session_id: SessionId, *, reason: str, actor: str) -> None: ...


class AgentPresence(Protocol):
    def is_online(self, agent_id: str) -> bool: ...


class AgentEvents:
    """The gateway's rules for agent events; ``handlers()`` plugs them into the agent channel.

    ``aclose()`` cancels pending loss checks and tunnel resumes.
    """

    def __init__(
        self, *, db: Database, audit: AuditSink, sessions: AgentSessions, presence: AgentPresence,
        loss_grace_s: float, resume_delay_s: float = RESUME_DELAY_S, ingest: FleetIngest | None = None,
        task_attempts: int = TASK_ATTEMPTS, task_retry_s: float = TASK_RETRY_S, node_id: str | None = None,
    ) -> None:
        self._db = db
        self._node_id = node_id  # several nodes: a stream ending here leaves an agent online elsewhere online
        self._ingest = ingest or FleetIngest(db)
        self._audit = audit
        self._sessions = sessions
        self._presence = presence
        self._loss_grace_s = loss_grace_s
        self._resume_delay_s = resume_delay_s
        self._loss_checks: dict[str, asyncio.Task[None]] = {}
        self._resumes: dict[str, asyncio.Task[None]] = {}
        self._running: set[asyncio.Task[None]] = set()  # every per-agent task until it ends (aclose cancels)
        self._task_attempts, self._task_retry_s = max(1, task_attempts), task_retry_s
        self.task_failures = 0  # per-agent task attempts that failed (also printgate_agent_task_failures)

    def handlers(self) -> ChannelHandlers:
        return ChannelHandlers(
            on_inventory=self.on_inventory, on_readings=self.on_readings,
            on_presence=self.on_presence, on_command_result=self.on_command_result,
            on_heartbeat=self.on_heartbeat,
        )

    async def aclose(self) -> None:
        tasks = [*self._loss_checks.values(), *self._resumes.values(), *self._running]
        self._loss_checks.clear()
        self._resumes.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def on_inventory(self, agent_id: str, found: list[pb.DiscoveredDevice]) -> None:
        now = datetime.now(UTC)
        async with self._db.transaction() as s:
            agent = await tenants.get_agent(s, agent_id)
            if agent is None:
                return
            # every printer SNMP found is monitored; one without a web page (ews_port 0: none of the
            # agent's ews_candidates answered) is kept too, and remote access to it is refused by policy
            printers = [d for d in found if convert.is_printer(d)]
            displaced: list[tuple[str, str, str]] = []
            changed_model: list[tuple[str, str, str | None, str | None]] = []
            for d in printers:
                identity = convert.identity_from_wire(d)
                # fail closed: a known device whose address another printer answers now gets no tunnel
                for old_id in await devices.mark_displaced_unverified(s, agent.site_id, d.ip, identity):
                    displaced.append((old_id, d.ip, identity.describe()))
                row = await devices.upsert_discovered(
                    s, device_id=uuid.uuid4().hex[:16], site_id=agent.site_id, agent_id=agent_id,
                    ip=d.ip, identity=identity, ews_port=max(d.ews_port, 0),
                    ews_scheme=(d.ews_scheme or "http") if d.ews_port > 0 else "", now=now,
                    ews_probe=d.ews_probe,
                )
                if row.model_changed_at == now:  # same device, new firmware/description text
                    changed_model.append((row.id, d.ip, row.previous_model, row.identity.model))
        await self._audit.append(AuditEventIn(
            type=event_types.AGENT_INVENTORY, actor=f"agent:{agent_id}",
            details={"printers": len(printers), "reported": len(found),
                     "without_web_page": sum(1 for d in printers if d.ews_port <= 0)},
        ))
        for device_id, ip, before, after in changed_model:
            await self._audit.append(AuditEventIn(
                type=event_types.DEVICE_FIRMWARE_CHANGED, actor=f"agent:{agent_id}", device_id=device_id,
                details={"ip": ip, "model_before": before, "model_now": after,
                         "action": "recorded; serial/MAC unchanged, the device stays verified"},
            ))
        for device_id, ip, now_there in displaced:
            await self._audit.append(AuditEventIn(
                type=event_types.DEVICE_IDENTITY_CHANGED, outcome=Outcome.FAILURE, actor=f"agent:{agent_id}",
                device_id=device_id,
                details={"ip": ip, "now_answering": now_there,
                         "action": "device marked unverified; remote access refused until re-verified"},
            ))
            log.warning("device.identity_changed", device=device_id, ip=ip, now=now_there)

    async def on_heartbeat(self, agent_id: str, beat: pb.HeartbeatRequest) -> None:
        """Keep what the agent says about its health (tasks, queue, drops, degradation)."""
        health = health_from_wire(agent_id, beat, received_at=datetime.now(UTC))
        async with self._db.transaction() as s:
            await agent_health.record_health(s, health)
        by_reason: dict[str, int] = {}
        for d in health.drops:
            by_reason[d.reason] = by_reason.get(d.reason, 0) + d.count
        for reason, count in by_reason.items():
            metrics.READINGS_DROPPED_REPORTED.labels(agent_id, reason).set(count)
        if health.degraded or health.unhealthy_tasks:
            log.warning("agent.unhealthy", agent=agent_id, degraded=health.degraded or None,
                        tasks=[t["name"] for t in health.unhealthy_tasks])

    async def on_readings(self, agent_id: str, batch: pb.ReadingsBatch) -> pb.Ack:
        """The fleet stores the batch (once per batch id); the answer names what it refused."""
        return await self._ingest.answer(agent_id, batch)

    async def on_presence(self, agent_id: str, online: bool) -> None:
        async with self._db.transaction() as s:
            if online:
                await tenants.set_agent_presence(s, agent_id, online=True, at=datetime.now(UTC))
            elif not await nodes.agent_offline(s, agent_id, self._node_id, datetime.now(UTC)):
                log.info("agent.presence.held_elsewhere", agent=agent_id, node=self._node_id,
                         hint="its stream here ended; another live gateway node holds its newer one")
        pending = self._loss_checks.pop(agent_id, None)
        if pending is not None:
            pending.cancel()
        if online and pending is not None:  # back within the grace period: its tunnels may be gone
            self._resumes[agent_id] = self._spawn(self._resume_tunnels(agent_id), f"agent-resume-{agent_id}")
        if online:  # sessions a gateway restart ended: the agent drops their tunnels (no retry loop)
            await self._sessions.drop_orphans(agent_id)
        if not online:
            self._loss_checks[agent_id] = self._spawn(self._confirm_agent_lost(agent_id), f"agent-loss-{agent_id}")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=name)
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return task

    async def _resume_tunnels(self, agent_id: str) -> None:
        try:
            await asyncio.sleep(self._resume_delay_s)  # a tunnel that only blipped reconnects by itself

            async def resume() -> None:
                resumed = await self._sessions.resume_tunnels(agent_id)
                if resumed:
                    log.info("dwa.tunnels_resumed", agent=agent_id, sessions=resumed)

            await self._attempt("resume", agent_id, resume, still_needed=lambda: self._presence.is_online(agent_id))
        finally:
            if self._resumes.get(agent_id) is asyncio.current_task():
                del self._resumes[agent_id]

    async def _confirm_agent_lost(self, agent_id: str) -> None:
        """A reconnect within the grace period keeps the agent's sessions; otherwise they end."""
        await asyncio.sleep(self._loss_grace_s)

        async def lost() -> None:
            if not self._presence.is_online(agent_id):
                await self._sessions.agent_lost(agent_id)

        if self._loss_checks.get(agent_id) is asyncio.current_task():
            del self._loss_checks[agent_id]  # from here on a reconnect does not cancel it (still_needed says)
        await self._attempt("loss-check", agent_id, lost, still_needed=lambda: not self._presence.is_online(agent_id))

    async def _attempt(self, task: str, agent_id: str, step: Callable[[], Awaitable[None]], *,
                       still_needed: Callable[[], bool]) -> None:
        """Run the per-agent ``step``; a failure is logged with the agent id and counted, tried again
        with back-off while ``still_needed()``, and after ``task_attempts`` audited as given up with what
        it lost: a short-lived task never vanishes silently."""
        error = ""
        for attempt in range(1, self._task_attempts + 1):
            try:
                await step()
                return
            except Exception as exc:  # any failure: visible, retried, then audited
                error = (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)[:500]
                self.task_failures += 1
                metrics.AGENT_TASK_FAILURES.labels(task).inc()
                log.error("agent.task_failed", agent=agent_id, task=task, attempt=attempt,
                          of=self._task_attempts, error=error, exc_info=exc)
            if attempt < self._task_attempts:
                await asyncio.sleep(min(TASK_RETRY_MAX_S, self._task_retry_s * 2 ** (attempt - 1)))
                if not still_needed():  # the agent came back (or left again): nothing left to do
                    log.info("agent.task_not_needed", agent=agent_id, task=task, attempts=attempt)
                    return
        log.error("agent.task_given_up", agent=agent_id, task=task, attempts=self._task_attempts, error=error,
                  lost=TASK_LOSS[task])
        try:
            await self._audit.append(AuditEventIn(
                type=event_types.GATEWAY_AGENT_TASK_FAILED, outcome=Outcome.FAILURE, actor=f"agent:{agent_id}",
                details={"task": task, "attempts": self._task_attempts, "error": error, "lost": TASK_LOSS[task]},
            ))
        except Exception as exc:  # the audit store is what failed, most likely: the log line is all we have
            log.error("agent.task_given_up.audit_failed", agent=agent_id, task=task, error=str(exc))

    async def on_command_result(self, agent_id: str, result: pb.CommandResult) -> None:
        if not result.ok and result.error_code in ("command_forged", "command_malformed"):
            log.error("agent.command.refused_by_agent", agent=agent_id, code=result.error_code,
                      message=result.message[:300], node=self._node_id,
                      hint="the agent does not trust the key that signed it: does this gateway node use the "
                           "shared key directory ([gateway] key_dir, docs/scale-out.md \"Keys\")?")
        failing = self._sessions.command_result(result.command_id, ok=result.ok, message=result.message)
        if failing is None:
            return
        await self._audit.append(AuditEventIn(
            type=event_types.DEVICE_IDENTITY_MISMATCH if result.error_code == IDENTITY_MISMATCH else event_types.TUNNEL_FAILED,
            outcome=Outcome.FAILURE, actor=f"agent:{agent_id}", session_id=failing,
            details={"code": result.error_code, "message": result.message},
        ))
        await self._sessions.close_session(SessionId(failing), reason=result.message,
                                           actor=f"agent:{agent_id}")


def _ms(ms: int) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms > 0 else None


def health_from_wire(agent_id: str, beat: pb.HeartbeatRequest, *, received_at: datetime) -> agent_health.AgentHealth:
    """The health part of a heartbeat as the store keeps it (bounded: an agent cannot flood the table)."""
    tasks = [
        {"name": t.name[:64], "state": t.state[:16], "restarts": t.restarts, "last_error": t.last_error[:500] or None,
         "last_error_at": (at.isoformat() if (at := _ms(t.last_error_at_ms)) else None)}
        for t in beat.tasks[:MAX_HEALTH_ITEMS]
    ]
    drops = [
        agent_health.ReadingsDrop(d.ip, d.kind, d.reason, d.count, _ms(d.first_at_ms) or received_at,
                                  _ms(d.last_at_ms) or received_at)
        for d in beat.drops[:MAX_HEALTH_ITEMS] if d.count > 0
    ]
    return agent_health.AgentHealth(
        agent_id, received_at, queue_length=beat.queue_length, queued_bytes=beat.queued_bytes,
        oldest_queued_at=_ms(beat.oldest_queued_ms), degraded=beat.degraded[:500], tasks=tasks, drops=drops,
    )
