"""The agent channel's own loops run under the cloud's Supervisor: the revocation watcher and the
aggregated-refusal auditor. Their dependency (a PostgreSQL cluster this test made) is stopped:
both show "degraded" with the error (not a silent log line), and the refusals counted meanwhile
are kept, not lost; the database started again: both are "running" and the refusals audited."""

from __future__ import annotations

from gateway.channel.ca import AgentCA
from gateway.channel.denials import RPC_DENIED, DenialTally
from gateway.channel.grpc_server import AgentChannelServer
from gateway.channel.hub import AgentHub
from lab.ports import free_tcp_port
from printgate.store.db import Database, migrate
from printgate.supervisor import Backoff, Supervisor
from printgate.testing.audit import ReadableAuditLog
from tests.channel.conftest import Recorder
from tests.faults.conftest import OwnPostgres, until


async def test_channel_loops_report_a_database_outage_and_recover(own_postgres: OwnPostgres, tmp_path) -> None:  # type: ignore[no-untyped-def]
    await migrate(own_postgres.url)
    db = Database(own_postgres.url)
    audit = ReadableAuditLog(db, None)
    sup = Supervisor("cloud", backoff=Backoff(initial=0.2, maximum=0.5))
    ca = AgentCA.load_or_create(tmp_path / "ca")
    denials = DenialTally(audit, window_s=0.3, supervisor=sup)
    server = AgentChannelServer("127.0.0.1", free_tcp_port(), enrol_port=free_tcp_port(), ca=ca, db=db,
                                audit=audit, hub=AgentHub(ca.command_key), handlers=Recorder().handlers(),
                                revocation_poll_s=0.2, denials=denials, supervisor=sup)

    def state(name: str) -> str:
        return {h.name: h.state for h in sup.health()}.get(name, "absent")

    try:
        async with sup, denials, server:
            await until(lambda: state("channel-revocations") == "running" and state("channel-denials") == "running",
                         10, "the channel loops are not supervised")
            own_postgres.stop("fast")
            denials.count(reason="test_refusal", source_ip="192.0.2.7", method="Test/Call")
            await until(lambda: state("channel-revocations") == "degraded" and state("channel-denials") == "degraded",
                         30, "the outage is not reported by the loops")
            health = {h.name: h for h in sup.health()}
            assert "revocations not refreshed" in (health["channel-revocations"].last_error or "")
            assert "audit not written" in (health["channel-denials"].last_error or "")
            assert denials.pending() == 1  # kept while the audit store is away

            own_postgres.start()
            await until(lambda: state("channel-revocations") == "running" and state("channel-denials") == "running",
                         30, "the loops did not recover after the database came back")
            await until(lambda: denials.pending() == 0, 10, "the kept refusal was not audited")
            records = [e for e in await audit.events() if e.type == RPC_DENIED]
            assert [r.details["reason"] for r in records] == ["test_refusal"] and records[0].details["count"] == 1
    finally:
        await db.aclose()
