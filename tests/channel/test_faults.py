"""Faults while readings flow: the agent reconnects and every batch arrives exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter

from agent.channel.backoff import Backoff
from agent.channel.grpc_client import GrpcChannel
from gateway.channel.grpc_server import AgentChannelServer
from lab.ports import free_tcp_port
from tests.channel.conftest import Cloud, Recorder, eventually


def gateway(cloud: Cloud, recorder: Recorder, port: int, enrol_port: int) -> AgentChannelServer:
    return AgentChannelServer("127.0.0.1", port, ca=cloud.ca, db=cloud.db, audit=cloud.audit,
                              hub=cloud.hub, handlers=recorder.handlers(), enrol_port=enrol_port)


async def test_cloud_restart_agent_reconnects_and_readings_arrive_exactly_once(cloud: Cloud) -> None:
    identity = await cloud.enrol(name="cloud-restart")
    recorder = Recorder()
    port, enrol_port = free_tcp_port(), free_tcp_port()
    first = gateway(cloud, recorder, port, enrol_port)
    await first.start()
    ch = GrpcChannel(f"127.0.0.1:{port}", identity, backoff=Backoff(initial=0.2, maximum=2.0))
    await ch.connect()
    second: AgentChannelServer | None = None
    try:
        await ch.wait_connected(10)
        batches = [f"restart-{i}" for i in range(30)]

        async def pump() -> None:
            for b in batches:
                await ch.upload_readings(b, b'{"n": 1}', deadline_s=30)
                await asyncio.sleep(0.05)

        uploads = asyncio.create_task(pump())
        await eventually(lambda: len(recorder.readings) >= 5)
        await first.aclose()  # the cloud goes away mid-stream
        await asyncio.sleep(1.0)
        second = gateway(cloud, recorder, port, enrol_port)
        await second.start()
        await asyncio.wait_for(uploads, 60)
        counts = Counter(b for a, b, _ in recorder.readings if a == identity.agent_id)
        assert set(counts) == set(batches) and max(counts.values()) == 1
        await eventually(lambda: ch.connected and cloud.hub.is_online(identity.agent_id), timeout=15)
        assert ch.reconnects >= 1
    finally:
        await ch.aclose()
        if second is not None:
            await second.aclose()
