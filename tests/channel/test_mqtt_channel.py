"""MQTT channel through a real Mosquitto with TLS client certificates and per-agent ACLs."""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap

from cryptography import x509

from agent.channel.command_guard import CommandGuard
from agent.channel.enroll import EnrolledIdentity
from agent.channel.mqtt_client import MqttChannel
from gateway.channel.hub import AgentHub
from gateway.channel.mqtt_bridge import MqttBridge
from printgate.store import channel as channel_store
from printgate.wire import agent_pb2 as pb
from printgate.wire import topics
from tests.channel.broker import ROOT, Broker
from tests.channel.conftest import Cloud, eventually


async def run(*args: str, timeout: float = 15) -> tuple[int, bytes]:
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out


def certs(identity: EnrolledIdentity) -> tuple:  # type: ignore[type-arg]
    return identity.cert_path, identity.key_path


def channel(broker: Broker, identity: EnrolledIdentity) -> MqttChannel:
    return MqttChannel("127.0.0.1", broker.port, identity,
                       guard=CommandGuard(identity.agent_id, identity.command_verify_key))


async def test_agent_cannot_subscribe_to_another_agents_commands(cloud: Cloud, broker: Broker,
                                                                 bridge: MqttBridge) -> None:
    a, b = await cloud.enrol(name="mq-a"), await cloud.enrol(name="mq-b")
    topic = topics.command_topic(b.agent_id)
    spy = asyncio.create_task(run("mosquitto_sub", *broker.client_args(*certs(a)), "-t", topic,
                                  "-C", "1", "-W", "3", "-i", a.agent_id + "-spy"))
    owner = asyncio.create_task(run("mosquitto_sub", *broker.client_args(*certs(b)), "-t", topic,
                                    "-C", "1", "-W", "5", "-i", b.agent_id + "-sub"))
    await asyncio.sleep(1.0)
    await bridge.publish_command(b.agent_id, b"secret-command-for-b")
    rc_owner, out_owner = await owner
    rc_spy, out_spy = await spy
    assert rc_owner == 0 and b"secret-command-for-b" in out_owner  # the control: delivery works
    assert rc_spy == 27 and b"secret" not in out_spy  # A got nothing within 3 s


async def test_agent_cannot_publish_into_another_agents_topics(cloud: Cloud, broker: Broker) -> None:
    a, b = await cloud.enrol(name="mq-pa"), await cloud.enrol(name="mq-pb")
    gateway_args = broker.observer_args()  # not the bridge's certificate: its CN is its client id
    watch = asyncio.create_task(run("mosquitto_sub", *gateway_args, "-t", topics.events_topic(b.agent_id),
                                    "-C", "1", "-W", "3", "-i", "watch-b-events"))
    await asyncio.sleep(1.0)
    await run("mosquitto_pub", *broker.client_args(*certs(a)), "-t", topics.events_topic(b.agent_id),
                      "-m", "forged-by-a", "-q", "1", "-i", a.agent_id + "-pub")
    rc_watch, out = await watch
    assert rc_watch == 27 and b"forged-by-a" not in out
    # control: B may publish into its own events topic
    watch = asyncio.create_task(run("mosquitto_sub", *gateway_args, "-t", topics.events_topic(b.agent_id),
                                    "-C", "1", "-W", "5", "-i", "watch-b-events-2"))
    await asyncio.sleep(1.0)
    await run("mosquitto_pub", *broker.client_args(*certs(b)), "-t", topics.events_topic(b.agent_id),
              "-m", "from-b", "-q", "1", "-i", b.agent_id + "-pub")
    rc_watch, out = await watch
    assert rc_watch == 0 and b"from-b" in out


async def test_command_reaches_agent_over_mqtt_and_result_comes_back(cloud: Cloud, broker: Broker,
                                                                     bridge: MqttBridge) -> None:
    identity = await cloud.enrol(name="mq-cmd")
    async with channel(broker, identity) as ch:
        await ch.wait_connected(10)
        await eventually(lambda: cloud.hub.channel_of(identity.agent_id) == "mqtt")
        sent = await cloud.hub.send(identity.agent_id, pb.Ping(nonce="n1"), ttl_s=30)
        got = await asyncio.wait_for(anext(ch.commands()), 5)
        assert got.id == sent and got.channel == "mqtt" and got.command.ping.nonce == "n1"
        await ch.publish_result(got.id, ok=True)
        await eventually(lambda: any(r.command_id == sent for _, r in cloud.recorder.results))
    await eventually(lambda: not cloud.hub.is_online(identity.agent_id))


async def test_replayed_mqtt_command_runs_once(cloud: Cloud, broker: Broker, bridge: MqttBridge) -> None:
    identity = await cloud.enrol(name="mq-replay")
    async with channel(broker, identity) as ch:
        await ch.wait_connected(10)
        env = cloud.hub.sign(identity.agent_id, pb.Ping(nonce="once"), ttl_s=30).SerializeToString()
        await bridge.publish_command(identity.agent_id, env)
        await bridge.publish_command(identity.agent_id, env)
        await asyncio.wait_for(anext(ch.commands()), 5)
        await eventually(lambda: [r.code for r in ch.rejections] == ["command_replayed"])


AGENT_PROC = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from agent.channel.command_guard import CommandGuard
    from agent.channel.enroll import EnrolledIdentity
    from agent.channel.mqtt_client import MqttChannel
    async def main():
        ident = EnrolledIdentity.load(Path(sys.argv[1]))
        ch = MqttChannel("127.0.0.1", int(sys.argv[2]), ident,
                         guard=CommandGuard(ident.agent_id, ident.command_verify_key))
        await ch.connect(); await ch.wait_connected(10)
        print("connected", flush=True)
        await asyncio.sleep(60)
    asyncio.run(main())
""")


async def test_last_will_marks_a_killed_agent_offline(cloud: Cloud, broker: Broker, bridge: MqttBridge) -> None:
    identity = await cloud.enrol(name="mq-will")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", AGENT_PROC, str(identity.data_dir), str(broker.port),
        stdout=asyncio.subprocess.PIPE, cwd=str(ROOT))
    try:
        assert proc.stdout is not None
        assert b"connected" in await asyncio.wait_for(proc.stdout.readline(), 20)
        await eventually(lambda: cloud.hub.is_online(identity.agent_id))
        proc.send_signal(signal.SIGKILL)  # no clean disconnect: the broker sends the will
        await proc.wait()
        await eventually(lambda: not cloud.hub.is_online(identity.agent_id), timeout=10)
        assert (identity.agent_id, False) in cloud.recorder.presence
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_agent_and_bridge_reconnect_after_broker_restart(cloud: Cloud) -> None:
    own = Broker.prepare(cloud.ca)
    own.start()
    d = own.directory
    hub = AgentHub(cloud.ca.command_key)  # this test's own gateway side
    br = MqttBridge("127.0.0.1", own.port, ca_path=d / "ca.crt", cert_path=d / "bridge.crt",
                    key_path=d / "bridge.key", hub=hub, handlers=cloud.recorder.handlers(),
                    client_id="printgate-gateway-restart")
    identity = await cloud.enrol(name="mq-restart")
    ch = channel(own, identity)
    try:
        await br.start()
        await ch.connect()
        await ch.wait_connected(10)
        await eventually(lambda: hub.is_online(identity.agent_id))
        own.stop()
        await eventually(lambda: not ch.connected, timeout=10)
        own.start()
        await eventually(lambda: ch.connects >= 2, timeout=20)
        await eventually(lambda: hub.is_online(identity.agent_id), timeout=20)
        sent = await hub.send(identity.agent_id, pb.Ping(nonce="after-restart"), ttl_s=30)
        got = await asyncio.wait_for(anext(ch.commands()), 10)
        assert got.id == sent
    finally:
        await ch.aclose()
        await br.aclose()
        own.remove()


async def test_command_sent_over_both_channels_executes_once(cloud: Cloud, broker: Broker,
                                                             bridge: MqttBridge) -> None:
    from agent.channel.grpc_client import GrpcChannel

    identity = await cloud.enrol(name="both-channels")
    guard = CommandGuard(identity.agent_id, identity.command_verify_key,
                         state_path=identity.data_dir / "seen-commands.json")
    g = GrpcChannel(cloud.server.target, identity, guard=guard)
    m = MqttChannel("127.0.0.1", broker.port, identity, guard=guard)
    async with g, m:
        await g.wait_connected(10)
        await m.wait_connected(10)
        await eventually(lambda: cloud.hub.connected_channels(identity.agent_id) == {"grpc", "mqtt"})
        envelope = cloud.hub.sign(identity.agent_id, pb.Ping(nonce="dup"), ttl_s=30)
        await cloud.hub.deliver(identity.agent_id, envelope, via="grpc")
        await cloud.hub.deliver(identity.agent_id, envelope, via="mqtt")
        await eventually(lambda: len(g.rejections) + len(m.rejections) == 1)
        first = asyncio.ensure_future(anext(g.commands()))
        second = asyncio.ensure_future(anext(m.commands()))
        done, pending = await asyncio.wait({first, second}, timeout=2)
        for task in pending:
            task.cancel()
        assert len(done) == 1 and next(iter(done)).result().id == pb.Command.FromString(envelope.command).id
        assert [r.code for r in g.rejections + m.rejections] == ["command_replayed"]


async def test_agent_cannot_take_over_the_bridge_or_another_agent_by_client_id(
        cloud: Cloud, broker: Broker, bridge: MqttBridge) -> None:
    a, b = await cloud.enrol(name="mq-thief"), await cloud.enrol(name="mq-victim")
    async with channel(broker, b) as victim:
        await victim.wait_connected(10)
        await eventually(lambda: cloud.hub.channel_of(b.agent_id) == "mqtt")
        bridge_drops, victim_connects = bridge.disconnects, victim.connects
        for client_id in (topics.GATEWAY_USER, b.agent_id):
            rc, out = await run("mosquitto_sub", *broker.client_args(*certs(a)), "-i", client_id,
                                "-t", topics.command_topic(b.agent_id), "-C", "1", "-W", "2")
            assert rc == 27 and b"secret" not in out  # connected as itself, saw nothing
        await asyncio.sleep(0.5)
        assert bridge.disconnects == bridge_drops, "agent A's connection disconnected the gateway bridge"
        assert victim.connected and victim.connects == victim_connects, "agent A's connection kicked agent B"
        sent = await cloud.hub.send(b.agent_id, pb.Ping(nonce="still-mine"), ttl_s=30)
        got = await asyncio.wait_for(anext(victim.commands()), 5)
        assert got.id == sent
    assert f"u'{a.agent_id}'" in broker.log() or a.agent_id in broker.log()


async def test_revoked_agent_certificate_is_refused_by_the_broker(cloud: Cloud, broker: Broker,
                                                                 bridge: MqttBridge) -> None:
    identity = await cloud.enrol(name="mq-revoked")
    args = [*broker.client_args(*certs(identity)), "-t", topics.presence_topic(identity.agent_id), "-q", "1"]
    rc, out = await run("mosquitto_pub", *args, "-m", "online")
    assert rc == 0, out  # control: accepted before the revocation
    await cloud.server.revoke_agent(identity.agent_id, reason="host stolen", actor="admin@dealer.test")
    # the gateway wrote the CRL, signed by the agent CA, and sent the broker a SIGHUP
    crl = x509.load_pem_x509_crl(broker.crl_path.read_bytes())
    assert crl.is_signature_valid(cloud.ca.cert.public_key())  # type: ignore[arg-type]
    serial = x509.load_pem_x509_certificate(identity.cert_pem()).serial_number
    assert crl.get_revoked_certificate_by_serial_number(serial) is not None
    for _ in range(50):
        rc, out = await run("mosquitto_pub", *args, "-m", "online")
        if rc != 0:
            break
        await asyncio.sleep(0.1)
    assert rc != 0, out  # the TLS handshake fails: certificate revoked


async def test_bridge_ignores_a_revoked_agent_that_is_still_connected(cloud: Cloud, broker: Broker,
                                                                     bridge: MqttBridge) -> None:
    """A connection opened before the revocation stays up at the broker: the bridge checks itself."""
    identity = await cloud.enrol(name="mq-still-connected")
    async with channel(broker, identity) as ch:
        await ch.wait_connected(10)
        await eventually(lambda: cloud.hub.is_online(identity.agent_id))
        async with cloud.db.transaction() as s:  # revoked by the portal
            await channel_store.revoke_agent(s, identity.agent_id, reason="host stolen")
        envelope = cloud.hub.sign(identity.agent_id, pb.Ping(nonce="before"), ttl_s=30)
        for _ in range(20):  # presence "online" and forged results
            await ch.publish_result(pb.Command.FromString(envelope.command).id, ok=False)
        await asyncio.sleep(1.0)
        assert not cloud.hub.is_online(identity.agent_id)
        assert ch.connected  # the broker keeps a connection made before the revocation
    assert not any(agent == identity.agent_id for agent, _ in cloud.recorder.results)
    await cloud.server.denials.flush()
    ignored = [e for e in await cloud.audit.events()
               if e.type == "agent.mqtt.ignored" and e.details.get("agent_id") == identity.agent_id]
    assert sum(int(e.details["count"]) for e in ignored) >= 20 and len(ignored) <= 4
    assert {e.details["reason"] for e in ignored} == {"agent_revoked"}


async def test_result_over_mqtt_for_another_agents_command_is_ignored(cloud: Cloud, broker: Broker,
                                                                      bridge: MqttBridge) -> None:
    a, b = await cloud.enrol(name="mq-forger"), await cloud.enrol(name="mq-owner")
    envelope = cloud.hub.sign(b.agent_id, pb.OpenTunnel(session_id="victim"), ttl_s=30)
    command_id = pb.Command.FromString(envelope.command).id
    async with channel(broker, a) as ch:
        await ch.wait_connected(10)
        await ch.publish_result(command_id, ok=False)
        await asyncio.sleep(1.0)
    assert not any(r.command_id == command_id for _, r in cloud.recorder.results)
    await cloud.server.denials.flush()
    ignored = [e for e in await cloud.audit.events()
               if e.type == "agent.mqtt.ignored" and e.details.get("agent_id") == a.agent_id]
    assert [e.details["reason"] for e in ignored] == ["foreign_command"]
