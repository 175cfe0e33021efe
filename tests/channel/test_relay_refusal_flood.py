"""The tester's heartbeat flood (issue 12 follow-up, item 2): an agent with no sessions sends
heartbeats full of ``RelayRefusal(session_id="")``. Before the fix every refusal became
its own ``agent.relay_channel_refused`` record (51 per heartbeat); now a refusal that
names no session of the agent is a counted denial, audited in aggregate."""

from __future__ import annotations

from agent.channel.grpc_client import GrpcChannel
from printgate.wire import agent_pb2 as pb
from tests.channel.conftest import Cloud


async def test_refusals_without_a_session_are_denials_in_aggregate(cloud: Cloud) -> None:
    identity = await cloud.enrol(name="refusal-spray")
    spray = [pb.RelayRefusal(session_id="", kind="direct-tcpip", detail="x" * 500) for _ in range(200)]
    unknown = [pb.RelayRefusal(session_id=f"no-such-{i}", kind="session", detail="y" * 500) for i in range(50)]
    async with GrpcChannel(cloud.server.target, identity) as ch:
        for _ in range(10):
            await ch.heartbeat(relay_refusals=spray + unknown)
    await cloud.server.denials.flush()
    mine = [e for e in await cloud.audit.events() if e.details.get("agent_id") == identity.agent_id]
    assert not [e for e in mine if e.type == "agent.relay_channel_refused"]
    denied = sorted((e.details["reason"], e.details["count"]) for e in mine if e.type == "agent.rpc.denied")
    assert denied == [("foreign_session", 10), ("relay_refusal_without_session", 10)]
    assert len([e for e in mine if e.type != "agent.enrolment"]) == 2  # 2,500 refusals: two records
