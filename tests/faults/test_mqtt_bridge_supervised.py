"""The gateway's MQTT bridge runs under the cloud's Supervisor, against a real TLS Mosquitto (the
reference config, started by this test) and a PostgreSQL cluster this test made:

- the broker stopped: "mqtt-bridge" shows degraded, saying it is not connected (not only a log
  line); the broker started again on its port: running;
- the database stopped while an agent publishes its presence: the dispatch fails, "mqtt-dispatch"
  is restarted with back-off (restarts counted, last error kept) and the message is kept; the
  database back, the message is handled (here: an agent the database does not know, so it is
  counted as an ignored message for the audit), not lost."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.channel.enroll import make_csr
from gateway.channel.ca import AgentCA
from gateway.channel.denials import DenialTally
from gateway.channel.hub import AgentHub
from gateway.channel.mqtt_bridge import DISPATCH_TASK, WATCH_TASK, MqttBridge
from lab.mosquitto import Broker
from printgate.store.db import Database, migrate
from printgate.supervisor import Backoff, Supervisor
from printgate.testing.audit import ReadableAuditLog
from printgate.wire import topics
from tests.faults.conftest import OwnPostgres, until

pytestmark = pytest.mark.skipif(shutil.which("mosquitto_pub") is None and not Path("/usr/sbin/mosquitto").exists(),
                                reason="needs mosquitto and mosquitto-clients")


def _agent_files(ca: AgentCA, directory: Path, agent_id: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    issued = ca.issue_agent_certificate(make_csr(key, "x"), agent_id=agent_id, site_id="site-1",
                                        ttl=timedelta(hours=1))
    cert, key_path = directory / f"{agent_id}.crt", directory / f"{agent_id}.key"
    cert.write_bytes(issued.pem)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert, key_path


async def test_mqtt_bridge_reports_a_broker_outage_and_keeps_messages_through_a_database_outage(
        own_postgres: OwnPostgres, tmp_path: Path) -> None:
    await migrate(own_postgres.url)
    db = Database(own_postgres.url)
    ca = AgentCA.load_or_create(tmp_path / "ca")
    broker = Broker.prepare(ca)
    sup = Supervisor("cloud", backoff=Backoff(initial=0.3, maximum=1.0))
    denials = DenialTally(ReadableAuditLog(db, None), window_s=3600)  # counted, flushed at close
    d = broker.directory
    bridge = MqttBridge("127.0.0.1", broker.port, ca_path=d / "ca.crt", cert_path=d / "bridge.crt",
                        key_path=d / "bridge.key", hub=AgentHub(ca.command_key), db=db, denials=denials,
                        supervisor=sup, watch_s=0.1)

    def health(name: str) -> tuple[str, int, str]:
        h = {h.name: h for h in sup.health()}.get(name)
        return (h.state, h.restarts, h.last_error or "") if h is not None else ("absent", 0, "")

    try:
        await asyncio.to_thread(broker.start)
        async with sup, bridge:
            await until(lambda: health(WATCH_TASK)[0] == "running" and health(DISPATCH_TASK)[0] == "running",
                         10, "the bridge's loops are not supervised")
            await asyncio.to_thread(broker.stop)
            await until(lambda: health(WATCH_TASK)[0] == "degraded", 15, "the broker outage is not reported")
            assert "not connected to the MQTT broker" in health(WATCH_TASK)[2]
            await asyncio.to_thread(broker.start)
            await until(lambda: health(WATCH_TASK)[0] == "running", 30, "the bridge did not reconnect")

            own_postgres.stop("fast")
            cert, key = _agent_files(ca, tmp_path, "agent-mqtt-1")
            await asyncio.to_thread(subprocess.run, [
                "mosquitto_pub", *broker.client_args(cert, key), "-q", "1",
                "-t", topics.presence_topic("agent-mqtt-1"), "-m", topics.ONLINE.decode()],
                check=True, capture_output=True, timeout=20)
            await until(lambda: health(DISPATCH_TASK)[1] >= 1, 30, "the failed dispatch is not reported")
            assert health(DISPATCH_TASK)[2], "no last error kept"
            assert bridge.dispatch_failures >= 1 and denials.pending() == 0

            own_postgres.start()
            await until(lambda: denials.pending() == 1, 30, "the message was lost in the database outage")
            await until(lambda: health(DISPATCH_TASK)[0] == "running", 10, "the dispatch did not recover")
        assert health(WATCH_TASK)[0] == "absent" and health(DISPATCH_TASK)[0] == "absent"
    finally:
        await asyncio.to_thread(broker.remove)
        await db.aclose()
