"""Two agents on one data dir: the second is refused with a message naming the first one's pid
(they would share the readings queue and overwrite each other's drop counts); a busy metrics port
does not kill the agent -- it warns and runs without the endpoint."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from agent.channel.enroll import enroll
from lab.catalog import PRINTERS
from lab.ports import free_tcp_port
from printgate.cli.demo_system import DemoSystem
from tests.faults.agent_proc import start_agent, stop, wait_status, write_config


async def test_a_second_agent_on_the_same_data_dir_is_refused_and_a_busy_metrics_port_is_survived(
    tmp_path: Path,
) -> None:
    async with DemoSystem(tmp_path / "cloud", log_level="warning", with_agent=False) as system:
        agent_dir = tmp_path / "agent"
        await enroll(system.cloud.channel.enrol_target, system.enrolment_token, agent_dir,
                     ca_cert_pem=system.cloud.ca.cert_pem)
        agent = system.agent_settings(agent_dir).to_config()
        with socket.socket() as busy:  # something else already listens on the metrics port
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            agent.update(targets=[p.ip for p in PRINTERS[:1]], scan_interval_seconds=3600.0,
                         stop_deadline_seconds=3.0, metrics_port=busy.getsockname()[1])
            config = write_config(tmp_path / "agent.toml", agent)
            first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
            first = await start_agent(config, first_log)
            try:
                await wait_status(config, lambda s: s.get("running") and s.get("channel") == "connected",
                                  timeout=60, what="the first agent running despite the busy metrics port")
                assert first.returncode is None
                assert "agent.metrics_unavailable" in first_log.read_text()
                assert "Traceback" not in first_log.read_text()

                second = await start_agent(write_config(tmp_path / "second.toml",
                                                        {**agent, "metrics_port": free_tcp_port()}), second_log)
                code = await asyncio.wait_for(second.wait(), 30)
                said = second_log.read_text()
                assert code != 0
                assert f"another agent (pid {first.pid}) is already running" in said, said
                assert "Traceback" not in said
                await asyncio.sleep(1.0)
                assert first.returncode is None, "the refused second agent took the first one down"
            finally:
                await stop(first)
