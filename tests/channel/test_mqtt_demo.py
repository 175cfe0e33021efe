"""``printgate demo --mqtt``: the demo's agent takes commands from the reference Mosquitto too."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agent.channel.dual import DualChannel
from printgate.cli.demo_system import DemoSystem
from printgate.wire import agent_pb2 as pb
from tests.channel.conftest import eventually


async def test_demo_with_mqtt_runs_the_agent_on_both_channels(tmp_path: Path) -> None:
    async with DemoSystem(tmp_path / "demo", log_level="warning", mqtt=True) as demo:
        assert demo.mosquitto is not None and demo.cloud.mqtt is not None
        channel = demo.agent.channel
        assert isinstance(channel, DualChannel)
        agent_id = channel.identity.agent_id
        await eventually(lambda: demo.cloud.hub.connected_channels(agent_id) == {"grpc", "mqtt"}, timeout=20)
        # a command through the broker reaches the agent (its guard saw it: the same one again over
        # gRPC is refused as a replay)
        envelope = demo.cloud.hub.sign(agent_id, pb.Ping(nonce="demo"), ttl_s=30)
        await demo.cloud.hub.deliver(agent_id, envelope, via="mqtt")
        await asyncio.sleep(1.0)
        assert channel.grpc.rejections == []
        await demo.cloud.hub.deliver(agent_id, envelope, via="grpc")
        await eventually(lambda: [r.code for r in channel.grpc.rejections] == ["command_replayed"])
