"""`printgate demo` for a newcomer (findings 5 and 6): its settings file lets every CLI command reach
the running demo, and a stop ends the live sessions while the agent still hears the close commands."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from structlog.testing import capture_logs

from lab.catalog import LAB_DEVICES
from printgate.agent_settings import load_agent_config
from printgate.cli.demo import write_demo_config
from printgate.cli.demo_system import DemoSystem
from printgate.settings import Settings

PRINTGATE = str(Path(sys.executable).with_name("printgate"))


async def _cli(*args: str, cwd: Path) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRINTGATE_")} | {"COLUMNS": "200"}
    proc = await asyncio.create_subprocess_exec(PRINTGATE, *args, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_demo_config_reaches_the_demo_and_a_stop_ends_sessions_while_the_agent_listens(tmp_path: Path) -> None:
    system = DemoSystem(tmp_path / "demo", log_level="info")
    await system.start()
    try:
        await system.wait_for_devices(minimum=1, timeout=120)
        config = write_demo_config(system, tmp_path / "demo" / "printgate.toml")
        assert config.stat().st_mode & 0o777 == 0o600
        assert Settings.load(config).database_url == system.settings.database_url
        assert load_agent_config(config).agent.data_dir == (tmp_path / "demo" / "agent").resolve()
        elsewhere = tmp_path / "elsewhere"  # a read-only command from another directory: no stray database
        elsewhere.mkdir()
        code, out = await _cli("admin", "dealers", "--config", str(config), cwd=elsewhere)
        assert code == 0 and out.split("\t")[0] == "dealer-demo", out
        for _ in range(30):  # the agent writes its status file every few seconds: the newest may predate the stream
            code, out = await _cli("agent", "status", "--config", str(config), cwd=elsewhere)
            if code != 0 or "channel: connected" in out:
                break
            await asyncio.sleep(1)
        assert code == 0 and "channel: connected" in out and "running: True" in out, out
        code, out = await _cli("fleet", "retention", "--dealer", "Demo Print Services", "--config", str(config),
                               cwd=elsewhere)
        assert code == 0 and out.startswith("dealer dealer-demo keeps"), out
        assert list(elsewhere.iterdir()) == []
        await system.open_session_as_demo_user(LAB_DEVICES[0].ip)
    finally:
        with capture_logs() as logs:
            await system.aclose()
    events = [e["event"] for e in logs]
    assert "dwa.teardown_step_failed" not in events, [e for e in logs if e["event"] == "dwa.teardown_step_failed"]
    sent = next(i for i, e in enumerate(logs) if e["event"] == "agent.command.sent" and e.get("kind") == "close_tunnel")
    assert "agent.stopped" in events[sent:]  # the close went out before the agent stopped
    assert "agent.stop_upload_cut" not in events  # the agent still had its channel to flush its queue
