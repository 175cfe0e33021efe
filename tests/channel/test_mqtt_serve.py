"""``printgate serve`` with ``channel.mqtt_url``: the cloud bridges to a real Mosquitto (reference
config), tells agents where it is at enrolment, and an agent takes commands from both channels;
a revocation reaches the broker through the CRL the gateway writes and the SIGHUP it sends."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agent.channel.dual import DualChannel
from agent.channel.enroll import enroll
from agent.channel.grpc_client import GrpcChannel
from gateway.channel.ca import AgentCA
from lab.mosquitto import Broker
from lab.ports import free_tcp_port
from printgate.cli.cloud import Cloud
from printgate.settings import ChannelSettings, GatewaySettings, PortalSettings, Settings
from printgate.store import channel as channel_store
from printgate.wire import agent_pb2 as pb
from printgate.wire import topics
from tests.channel.conftest import eventually, make_tenancy
from tests.channel.test_mqtt_channel import run


def cloud_settings(tmp_path: Path, broker: Broker) -> Settings:
    portal = free_tcp_port()
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'cloud.db'}", log_level="warning",
        portal=PortalSettings(port=portal, public_url=f"http://127.0.0.1:{portal}"),
        gateway=GatewaySettings(relay_port=free_tcp_port(), proxy_port=free_tcp_port(),
                                grpc_port=free_tcp_port(), enrol_port=free_tcp_port(),
                                data_dir=tmp_path / "gateway"),
        channel=ChannelSettings(mqtt_url=broker.url, mqtt_crl_file=broker.crl_path,
                                mqtt_broker_pid_file=broker.pid_file),
    )


async def test_serve_with_an_mqtt_url_runs_mqtt_as_a_second_command_channel(tmp_path: Path) -> None:
    ca = AgentCA.load_or_create(tmp_path / "gateway" / "agent-ca")  # the broker's certificates come from it
    async with Broker.prepare(ca) as broker, Cloud(cloud_settings(tmp_path, broker),
                                                   data_dir=tmp_path / "gateway") as cloud:
        assert cloud.mqtt is not None
        site, _ = await make_tenancy(cloud.db)
        async with cloud.db.transaction() as s:
            token = await channel_store.create_enrolment_token(s, site, ttl=channel_store.MAX_TOKEN_TTL,
                                                               created_by="admin")
        identity = await enroll(cloud.channel.enrol_target, token, tmp_path / "agent", ca_cert_pem=cloud.ca.cert_pem)
        assert identity.mqtt_url == broker.url  # enrolment tells the agent where the broker is
        async with DualChannel.for_identity(GrpcChannel(cloud.channel.target, identity), identity) as ch:
            await ch.wait_connected(10)
            await eventually(lambda: cloud.hub.connected_channels(identity.agent_id) == {"grpc", "mqtt"})
            envelope = cloud.hub.sign(identity.agent_id, pb.Ping(nonce="via-broker"), ttl_s=30)
            await cloud.hub.deliver(identity.agent_id, envelope, via="mqtt")
            got = await asyncio.wait_for(anext(ch.commands()), 10)
            assert got.channel == "mqtt" and got.command.ping.nonce == "via-broker"
            await ch.report_result(got.id, ok=True)
            await cloud.hub.deliver(identity.agent_id, envelope, via="grpc")  # the same command again
            await eventually(lambda: [r.code for r in ch.grpc.rejections] == ["command_replayed"])
            # a renewed certificate: the MQTT client is rebuilt with it and still gets commands
            first_client = ch.mqtt
            renewed = await ch.renew_certificate()
            assert ch.mqtt is not first_client and ch.mqtt.identity.cert_pem() == renewed.cert_pem()
            await ch.mqtt.wait_connected(10)
            await eventually(lambda: "mqtt" in cloud.hub.connected_channels(identity.agent_id))
            again = cloud.hub.sign(identity.agent_id, pb.Ping(nonce="after-renewal"), ttl_s=30)
            await cloud.hub.deliver(identity.agent_id, again, via="mqtt")
            got = await asyncio.wait_for(anext(ch.commands()), 10)
            assert got.channel == "mqtt" and got.command.ping.nonce == "after-renewal"
            identity = renewed
        args = [*broker.client_args(identity.cert_path, identity.key_path),
                "-t", topics.presence_topic(identity.agent_id), "-m", "online", "-q", "1"]
        rc, out = await run("mosquitto_pub", *args)
        assert rc == 0, out  # control
        before = broker.crl_path.read_bytes()
        await cloud.channel.revoke_agent(identity.agent_id, reason="host stolen", actor="admin")
        assert broker.crl_path.read_bytes() != before  # the gateway wrote the CRL (and sent SIGHUP)
        for _ in range(50):
            rc, out = await run("mosquitto_pub", *args)
            if rc != 0:
                break
            await asyncio.sleep(0.1)
        assert rc != 0, out
        assert "Reloading config" in broker.log()
