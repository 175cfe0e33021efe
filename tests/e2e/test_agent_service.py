"""The agent as customers run it: enrolled with the CLI, `printgate agent run` as its own process."""

from __future__ import annotations

import asyncio
import json
import stat
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from agent.channel.enroll import EnrolledIdentity
from lab.catalog import PRINTERS, by_name
from printgate.cli.demo_system import DemoSystem
from tests.e2e.conftest import session_cookie

PRINTGATE = str(Path(sys.executable).with_name("printgate"))
PRINTER = by_name("ricoh_mpc3002")


def _toml(settings: dict[str, object]) -> str:
    lines = ['log_level = "warning"', "[agent]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


async def test_enrolled_agent_service_discovers_printers_and_serves_a_tunnel(tmp_path: Path) -> None:
    async with DemoSystem(tmp_path / "cloud", log_level="warning", with_agent=False) as system:
        agent_dir = tmp_path / "agent"
        ca = tmp_path / "gateway-ca.pem"
        ca.write_bytes(system.cloud.ca.cert_pem)
        enrol = await asyncio.create_subprocess_exec(
            PRINTGATE, "agent", "enroll", "--url", system.cloud.channel.enrol_target,
            "--token", system.enrolment_token, "--data-dir", str(agent_dir), "--ca-cert", str(ca),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(enrol.communicate(), 60)
        assert enrol.returncode == 0, err.decode()
        assert "enrolled as" in out.decode()
        identity = EnrolledIdentity.load(agent_dir)
        assert stat.S_IMODE(identity.key_path.stat().st_mode) == 0o600

        # The same one-time token cannot enrol a second agent.
        again = await asyncio.create_subprocess_exec(
            PRINTGATE, "agent", "enroll", "--url", system.cloud.channel.enrol_target,
            "--token", system.enrolment_token, "--data-dir", str(tmp_path / "agent2"),
            "--ca-cert", str(ca), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        _, err2 = await asyncio.wait_for(again.communicate(), 60)
        assert again.returncode != 0 and b"token" in err2.lower()

        settings = system.agent_settings(agent_dir).to_config()
        config = tmp_path / "agent.toml"
        config.write_text(_toml(settings))
        service = await asyncio.create_subprocess_exec(PRINTGATE, "agent", "run", "--config", str(config))
        try:
            found = await system.wait_for_devices(minimum=len(PRINTERS), timeout=120)
            assert found == len(PRINTERS)
            launch = await system.open_session_as_demo_user(PRINTER.ip)
            parts = urlsplit(launch)
            local = f"http://127.0.0.1:{parts.port}"
            async with httpx.AsyncClient(timeout=30) as client:
                first = await client.get(f"{local}{parts.path}?{parts.query}", headers={"Host": parts.netloc})
                page = await client.get(f"{local}/", headers={"Host": parts.netloc, "Cookie": session_cookie(first)})
            assert page.status_code == 200
            assert PRINTER.name in page.text
            assert PRINTER.ip not in page.text
        finally:
            service.terminate()
            await asyncio.wait_for(service.wait(), 30)
        assert service.returncode == 0, "SIGTERM (systemctl stop) must shut the agent down cleanly"
