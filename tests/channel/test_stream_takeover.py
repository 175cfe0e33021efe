"""The tester's silent takeover (issue 12 follow-up, item 7): a second connection presenting a
copied agent certificate opened the command stream and cut the real agent's. Now the real
agent's stream ends with ABORTED and a message saying what happened (the agent logs it as
``agent.channel.lost``), and takeovers are audited in aggregate per agent and window."""

from __future__ import annotations

from grpc import aio

from agent.channel.grpc_client import GrpcChannel
from printgate.wire import agent_pb2 as pb
from printgate.wire import agent_pb2_grpc as pb_grpc
from tests.channel.conftest import Cloud, eventually
from tests.channel.test_channel_authorisation import creds


async def test_a_stream_takeover_tells_the_agent_and_is_audited(cloud: Cloud) -> None:
    identity = await cloud.enrol(name="takeover")
    async with GrpcChannel(cloud.server.target, identity) as real:
        await real.wait_connected(10)
        async with aio.secure_channel(cloud.server.target, creds(cloud, identity)) as copied:
            for _ in range(3):  # the holder of the copied key grabs the stream again and again (bounded)
                call = pb_grpc.AgentChannelStub(copied).CommandStream(pb.CommandStreamRequest(), timeout=10)
                await call.initial_metadata()
                await eventually(lambda: "taken over" in (real.last_error or ""))
                assert (real.last_error or "").startswith("ABORTED: command stream taken over")
                assert "revoke" in (real.last_error or "")
                call.cancel()
                real.last_error = None
                await real.wait_connected(15)
    await cloud.server.denials.flush()
    records = [e for e in await cloud.audit.events()
               if e.type == "agent.stream.taken_over" and e.details.get("agent_id") == identity.agent_id]
    assert len(records) == 1  # aggregated: one record for the window
    assert records[0].details["count"] >= 3
    assert records[0].details["reason"] == "command_stream_taken_over"
