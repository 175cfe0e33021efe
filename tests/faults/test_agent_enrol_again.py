"""``printgate agent enroll`` on an agent that is already enrolled (issue 14 a14): refused at once with
what to do ("already enrolled as agent X ...; to enrol again, remove ..."), exit 2, the enrolled files
untouched and no stray ``agent.key.pending`` left behind."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from agent.channel.enroll import PENDING_KEY, enroll
from printgate.cli.demo_system import DemoSystem

PRINTGATE = str(Path(sys.executable).with_name("printgate"))


async def test_enrolling_an_enrolled_agent_again_says_so_and_leaves_nothing_behind(tmp_path: Path) -> None:
    async with DemoSystem(tmp_path / "cloud", log_level="warning", with_agent=False) as system:
        agent_dir = tmp_path / "agent"
        identity = await enroll(system.cloud.channel.enrol_target, system.enrolment_token, agent_dir,
                                ca_cert_pem=system.cloud.ca.cert_pem)
        ca = tmp_path / "agent-ca.crt"
        ca.write_bytes(system.cloud.ca.cert_pem)
        before = {p.name: p.read_bytes() for p in agent_dir.iterdir()}
        proc = await asyncio.create_subprocess_exec(
            PRINTGATE, "agent", "enroll", "--url", system.cloud.channel.enrol_target,
            "--token", system.enrolment_token, "--data-dir", str(agent_dir), "--ca-cert", str(ca),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        said = err.decode()
        assert proc.returncode == 2, (out, said)
        assert f"already enrolled as agent {identity.agent_id} (certificate in {agent_dir / 'agent.crt'})" in said
        assert "to enrol again" in said and str(agent_dir / "identity.json") in said
        assert "Traceback" not in said
        assert not (agent_dir / PENDING_KEY).exists()
        assert {p.name: p.read_bytes() for p in agent_dir.iterdir()} == before
