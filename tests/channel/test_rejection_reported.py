"""Issue 18 finding 5: a command the agent refuses as forged (signed by a gateway node with its own keys
instead of the shared ones) is answered as failed over the real gRPC channel, with the refusal's code,
so the node that sent it learns why at once (not "the tunnel did not open in time" 15 s later). A
replayed command (the same one over both channels) is not answered."""

from __future__ import annotations

import asyncio
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.channel.grpc_client import GrpcChannel
from gateway.channel.hub import AgentHub
from printgate.wire import agent_pb2 as pb
from tests.channel.conftest import Cloud, eventually


async def test_a_forged_command_is_answered_failed_with_why_and_a_replay_is_not(cloud: Cloud) -> None:
    identity = await cloud.enrol(name="rejection-reported")
    agent = identity.agent_id
    other_keys = AgentHub(Ed25519PrivateKey.generate())  # a node that created its own command-signing key
    async with GrpcChannel(cloud.server.target, identity) as ch:
        await ch.wait_connected(10)
        forged = other_keys.sign(agent, pb.OpenTunnel(session_id="s-other-keys"), ttl_s=30)
        forged_id = pb.Command.FromString(forged.command).id
        cloud.hub._remember(forged_id, agent, time.time() + 30)  # that node issued it: it takes the answer
        await cloud.hub.deliver(agent, forged, via="grpc")
        await eventually(lambda: any(r.command_id == forged_id for _, r in cloud.recorder.results))
        (answer,) = [r for a, r in cloud.recorder.results if r.command_id == forged_id and a == agent]
        assert not answer.ok and answer.error_code == "command_forged"
        assert "refused the command (command_forged)" in answer.message

        sent = await cloud.hub.send(agent, pb.CloseTunnel(session_id="s1", reason="done"), ttl_s=30)
        envelope = await asyncio.wait_for(anext(ch.commands()), 5)
        assert envelope.id == sent
        replay = cloud.hub.sign(agent, pb.Ping(nonce="x"), ttl_s=30)
        await cloud.hub.deliver(agent, replay, via="grpc")
        await cloud.hub.deliver(agent, replay, via="grpc")  # as over MQTT too: refused as a replay, not answered
        await eventually(lambda: [r.code for r in ch.rejections] == ["command_forged", "command_replayed"])
        await asyncio.sleep(0.3)
    assert not any(r.command_id in (sent, pb.Command.FromString(replay.command).id) for _, r in cloud.recorder.results)
