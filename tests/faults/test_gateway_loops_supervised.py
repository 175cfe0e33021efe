"""The relay's reaper and the gateway's per-agent tasks under a PostgreSQL outage (a cluster this
test made, really stopped and started):

- the reaper runs under the cloud's Supervisor; while the audit store refuses its records it shows
  "degraded" with the error (and printgate_task_healthy says 0), keeps the records and writes them,
  in order, once the database is back: the session the reaper ended is audited, not lost;
- an agent's loss check whose work fails (the database away) is logged with the agent id, counted in
  printgate_agent_task_failures and tried again with back-off; the database back, it does its job; one
  that keeps failing is audited as given up, saying what was lost."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import REGISTRY

from gateway.agent_events import TASK_LOSS, AgentEvents
from gateway.firewall.inprocess import InProcessFirewall
from gateway.relay import Relay
from printgate import metrics
from printgate.domain import event_types
from printgate.store import tenants
from printgate.store.db import Database, migrate
from printgate.supervisor import Backoff, Supervisor
from printgate.testing.audit import ReadableAuditLog
from tests.faults.conftest import OwnPostgres, until

SUPERVISOR = "cloud-reaper-test"  # its own label: other tests' clouds in this process export "cloud"


def _healthy_metric(task: str) -> float | None:
    for family in REGISTRY.collect():
        if family.name == "printgate_task_healthy":
            for sample in family.samples:
                if sample.labels.get("task") == task and sample.labels.get("supervisor") == SUPERVISOR:
                    return sample.value
    return None


async def test_relay_reaper_is_supervised_and_keeps_audit_records_through_an_outage(
        own_postgres: OwnPostgres, tmp_path: Path) -> None:
    await migrate(own_postgres.url)
    db = Database(own_postgres.url)
    audit = ReadableAuditLog(db, None)
    sup = Supervisor(SUPERVISOR, backoff=Backoff(initial=0.2, maximum=0.5))
    unexport = metrics.export_task_health(SUPERVISOR, sup.health)
    relay = Relay("127.0.0.1", 0, host_key_path=tmp_path / "host_key", ca_key_path=tmp_path / "ca_key",
                  audit=audit, firewall=InProcessFirewall(), tick_s=0.1, supervisor=sup)

    def state() -> str:
        return {h.name: h.state for h in sup.health()}.get("relay-reaper", "absent")

    try:
        async with sup, relay:
            await until(lambda: state() == "running", 10, "the relay reaper is not supervised")
            assert _healthy_metric("relay-reaper") == 1.0
            own_postgres.stop("fast")
            relay.issue_credential("sess-outage-1", valid_seconds=1, agent_id="agent-7")
            await until(lambda: "sess-outage-1" not in relay.live_session_ids(), 10, "the session did not expire")
            await until(lambda: state() == "degraded", 30, "the refused audit records are not reported")
            assert "audit not written" in ({h.name: h for h in sup.health()}["relay-reaper"].last_error or "")
            assert _healthy_metric("relay-reaper") == 0.0

            own_postgres.start()
            await until(lambda: state() == "running", 30, "the reaper did not recover after the database came back")
            records = await audit.events(session_id="sess-outage-1")
            types = [r.type for r in records]
            assert types == [event_types.RELAY_LIMIT_REACHED, event_types.RELAY_SESSION_ENDED], types
            assert records[1].details["reason"] == "limit reached: session credential expired"
        assert state() == "absent"  # the relay closed: its reaper left the supervisor
    finally:
        unexport()
        await db.aclose()


class _Presence:
    def __init__(self) -> None:
        self.online: set[str] = set()

    def is_online(self, agent_id: str) -> bool:
        return agent_id in self.online


class _Sessions:
    """The broker's side of a lost agent, writing to the real database (what fails in the outage)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.lost: list[str] = []

    async def resume_tunnels(self, agent_id: str) -> int:
        return 0

    async def drop_orphans(self, agent_id: str) -> int:
        return 0

    async def agent_lost(self, agent_id: str) -> None:
        async with self.db.transaction() as s:
            await tenants.set_agent_presence(s, agent_id, online=False, at=datetime.now(UTC))
        self.lost.append(agent_id)

    def command_result(self, command_id: str, *, ok: bool, message: str) -> str | None:
        return None

    async def close_session(self, session_id: str, *, reason: str, actor: str) -> None:  # type: ignore[override]
        return None


def _failures(task: str) -> float:
    return REGISTRY.get_sample_value("printgate_agent_task_failures_total", {"task": task}) or 0.0


async def test_a_failing_loss_check_is_visible_retried_and_then_does_its_job(own_postgres: OwnPostgres) -> None:
    await migrate(own_postgres.url)
    db = Database(own_postgres.url)
    sessions = _Sessions(db)
    events = AgentEvents(db=db, audit=ReadableAuditLog(db, None), sessions=sessions, presence=_Presence(),
                         loss_grace_s=0.2, task_attempts=50, task_retry_s=0.2)
    before = _failures("loss-check")
    try:
        await events.on_presence("agent-9", False)
        own_postgres.stop("fast")
        await until(lambda: events.task_failures >= 2, 30, "the failing loss check is not seen")
        assert _failures("loss-check") >= before + 2
        assert sessions.lost == []
        own_postgres.start()
        await until(lambda: sessions.lost == ["agent-9"], 30, "the loss check did not do its job after the outage")
    finally:
        await events.aclose()
        await db.aclose()


async def test_a_loss_check_that_keeps_failing_is_audited_as_given_up(own_postgres: OwnPostgres) -> None:
    await migrate(own_postgres.url)
    db = Database(own_postgres.url)
    audit = ReadableAuditLog(db, None)
    broken = Database(own_postgres.url.replace(f":{own_postgres.port}/", ":1/"))  # nothing listens there
    events = AgentEvents(db=db, audit=audit, sessions=_Sessions(broken), presence=_Presence(),
                         loss_grace_s=0.1, task_attempts=3, task_retry_s=0.1)
    try:
        await events.on_presence("agent-3", False)

        async def given_up() -> list[object]:
            return [r for r in await audit.events() if r.type == event_types.GATEWAY_AGENT_TASK_FAILED]

        async with asyncio.timeout(30):
            while not (records := await given_up()):
                await asyncio.sleep(0.1)
        [record] = records
        assert record.details["task"] == "loss-check" and record.details["attempts"] == 3  # type: ignore[attr-defined]
        assert record.details["lost"] == TASK_LOSS["loss-check"]  # type: ignore[attr-defined]
        assert events.task_failures == 3
    finally:
        await events.aclose()
        await broken.aclose()
        await db.aclose()
