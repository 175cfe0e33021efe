"""The tester's lock-out (issue 12 follow-up, item 5): 12 guesses at the secret of a token whose
id is known locked the token for everyone, so its legitimate agent got RESOURCE_EXHAUSTED.
The back-off is now per (token, source address), with a looser limit per token overall.

The gateway listens on the IPv6 wildcard (dual stack): the guesser comes from
127.0.0.1 (seen as ``::ffff:127.0.0.1``), the legitimate agent from ``::1``."""

from __future__ import annotations

import pytest

from agent.channel.enroll import enroll
from agent.errors import EnrolmentFailed
from gateway.channel.enrolment import BackOff, EnrolmentThrottle
from gateway.channel.grpc_server import AgentChannelServer
from lab.ports import free_tcp_port
from printgate.testing.audit import RecordingAuditSink
from tests.channel.conftest import Cloud


async def test_guessing_a_known_tokens_secret_does_not_lock_out_its_agent(cloud: Cloud) -> None:
    server = AgentChannelServer(
        "[::]", free_tcp_port(), ca=cloud.ca, db=cloud.db, audit=RecordingAuditSink(), hub=cloud.hub,
        handlers=cloud.recorder.handlers(), enrol_port=free_tcp_port(),
        server_names=["localhost", "127.0.0.1", "::1"],
        enrol_throttle=EnrolmentThrottle(per_token=BackOff(free=3, base_s=60)))
    async with server:
        token = await cloud.token()
        known_id = token[:len("pgenrol_") + 16]
        codes = []
        for i in range(12):
            try:
                await enroll(f"127.0.0.1:{server.enrol_port}", f"{known_id}_wrong{i}", cloud.tmp / f"lock{i}",
                             ca_cert_pem=cloud.ca.cert_pem)
            except EnrolmentFailed as exc:
                codes.append("RESOURCE_EXHAUSTED" if "RESOURCE_EXHAUSTED" in str(exc) else "other")
        assert codes[:3] == ["other"] * 3 and codes[3:] == ["RESOURCE_EXHAUSTED"] * 9  # the guesser is slowed
        # the token's own agent, from another address, enrols with it
        identity = await enroll(f"[::1]:{server.enrol_port}", token, cloud.tmp / "lock-legit",
                                ca_cert_pem=cloud.ca.cert_pem)
        assert identity.agent_id.startswith("agt-")
        # and the guesser is still backed off
        with pytest.raises(EnrolmentFailed, match="RESOURCE_EXHAUSTED"):
            await enroll(f"127.0.0.1:{server.enrol_port}", f"{known_id}_wrong99", cloud.tmp / "lock99",
                         ca_cert_pem=cloud.ca.cert_pem)
