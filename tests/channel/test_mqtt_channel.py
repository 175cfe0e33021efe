"""MQTT channel through a real Mosquitto with TLS client certificates and per-agent ACLs."""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap

from agent.channel.command_guard import CommandGuard
from agent.channel.enroll import EnrolledIdentity
from agent.channel.mqtt_client import MqttChannel
from gateway.channel.hub import AgentHub
from gateway.channel.mqtt_bridge import MqttBridge
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
    d = broker.directory
    gateway_args = broker.client_args(d / "bridge.crt", d / "bridge.key")
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
