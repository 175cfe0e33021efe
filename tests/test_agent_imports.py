"""The agent's import graph stays light (issue 17, item 6: <= 60 MB RSS on a Raspberry Pi).

``printgate agent run`` is started as deployed (the console script's ``main`` with the agent's
argv) in a fresh interpreter, then imports what its service loop imports (``agent.service``);
``sys.modules`` must then hold none of the cloud's heavy packages (SQLAlchemy, FastAPI, mitmproxy,
...) and none of what only a remote session needs (asyncssh, pyOpenSSL: loaded with the first
tunnel). ``benchmarks/agent_footprint.py`` measures the running process.

A second test follows the deployed process past its start: connected to a real gateway, given its
first trust set and then the set of a key rotation, it must still map no ``cryptography`` (the
sets' signatures are checked in a child process, ``agent.channel.signature_child``).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from lab.catalog import by_name
from printgate.cli.demo_system import DemoSystem
from tests.faults.agent_proc import start_agent, write_config

ROOT = Path(__file__).resolve().parents[1]
PRINTGATE = str(Path(sys.executable).with_name("printgate"))

# top-level packages the agent must not load at start
FORBIDDEN = {
    "sqlalchemy": "the cloud's store (printgate.cli's cloud commands pull it in)",
    "alembic": "the cloud's migrations",
    "aiosqlite": "the cloud's SQLite driver",
    "asyncpg": "the cloud's PostgreSQL driver",
    "fastapi": "the portal",
    "starlette": "the portal",
    "uvicorn": "the portal's server",
    "jinja2": "the portal's templates",
    "mitmproxy": "the gateway's proxy",
    "asyncssh": "the tunnel client: loaded with the first remote session, not at start",
    "OpenSSL": "pyOpenSSL, via asyncssh",
    "pysnmp": "the agent speaks SNMP with its own BER codec; pysnmp's MIB loading costs MBs",
    "gateway": "layer 3, never in the agent",
    "portal": "layer 3, never in the agent",
    "policy": "the cloud's policy",
    "audit": "the cloud's audit log",
    "lab": "test support",
    # issue 17 item 6, the ~25 MB that took the agent past 60 MB RSS:
    "pydantic": "the agent's settings load with printgate.agent_settings (pydantic is the cloud's)",
    "pydantic_settings": "the cloud's settings loader",
    "typer": "`agent run` is parsed by argparse (Typer 0.2x loads pydantic)",
    "rich": "structlog.dev imports rich (+ pygments, tracebacks) when it can: agent_run.keep_rich_out",
    "pygments": "rich's syntax highlighting",
    "paho": "the MQTT client: imported only when enrolment named a broker (agent.channel.dual)",
    "cryptography": "~9 MB (its own OpenSSL): loaded with the first tunnel or signed command other than a trust "
                    "set (a set's signature and the renewal CSR: agent.channel.signature_child)",
}
FORBIDDEN_MODULES = {"printgate.store": "ORM rows stay in the cloud", "printgate.cli.cloud": "the cloud's wiring",
                     "printgate.settings": "the cloud's settings (pydantic); the agent's: printgate.agent_settings"}

PROBE = """
import json, sys
from pathlib import Path
config = Path(sys.argv[1])
config.write_text('[agent]\\ndata_dir = "' + str(config.parent / 'not-enrolled') + '"\\ntargets = ["10.0.0.1"]\\n')
sys.argv = ["printgate", "agent", "run", "--config", str(config)]
from printgate.cli import main
try:
    main()
except SystemExit as exit:
    code = exit.code
import agent.service  # what `agent run` imports once enrolled (printgate.cli.agent_run._serve)
# None: a module made unimportable (printgate.cli.agent_run.keep_rich_out), not loaded
print(json.dumps({"exit": code, "modules": sorted(m for m, mod in sys.modules.items() if mod is not None)}))
"""


def test_agent_run_loads_no_heavy_package(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "agent.toml")], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    assert probe["exit"] == 2 and "not enrolled" in out.stderr  # it really went through `agent run`
    loaded = set(probe["modules"])
    assert "agent.service" in loaded and "grpc" in loaded  # the probe saw the real agent
    tops = {m.split(".")[0] for m in loaded}
    heavy = {name: why for name, why in FORBIDDEN.items() if name in tops}
    heavy |= {name: why for name, why in FORBIDDEN_MODULES.items()
              if any(m == name or m.startswith(name + ".") for m in loaded)}
    assert not heavy, f"the agent imports heavy packages at start: {heavy}"


def test_agent_run_refuses_a_bad_config_in_one_clear_line(tmp_path: Path) -> None:
    """The light loader keeps the validation: every bad value named, exit 2, no traceback."""
    config = tmp_path / "agent.toml"
    config.write_text('[agent]\ntargets = ["10.0.0.1"]\nsnmp_timeout = "soon"\nqueue_max_bytes = 0\n')
    script = Path(sys.executable).with_name("printgate")
    out = subprocess.run([str(script), "agent", "run", "--config", str(config)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    assert "agent.snmp_timeout: Input should be a valid number (got 'soon')" in out.stderr
    assert "agent.queue_max_bytes: Input should be greater than 0 (got 0)" in out.stderr
    helped = subprocess.run([str(script), "agent", "run", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert helped.returncode == 0 and "--config" in helped.stdout


# native code the polling agent must not map, as /proc/PID/maps names it (path fragment -> why)
NATIVE_FORBIDDEN = {
    "/cryptography/": "cryptography's _rust extension: ~8 MB resident (checked in a child process instead)",
    "/bcrypt/": "bcrypt, loaded by cryptography's SSH key support",
    "_cffi_backend": "cffi, loaded with cryptography",
    "/pydantic_core/": "pydantic (the cloud's settings)",
    "/sqlalchemy/": "the cloud's store",
    "/asyncpg/": "the cloud's PostgreSQL driver",
}


def _native_forbidden(pid: int) -> dict[str, str]:
    mapped = {line.split()[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
              if line.count(" ") >= 5 and "/" in line}
    return {path: why for fragment, why in NATIVE_FORBIDDEN.items() for path in mapped if fragment in path}


async def _until(predicate: object, what: str, timeout: float = 60) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.2)


@pytest.mark.timeout(240)
async def test_the_running_agent_maps_no_cryptography_after_connect_and_trust_sets(tmp_path: Path) -> None:
    printer = by_name("ricoh_mpc3002")
    async with DemoSystem(tmp_path / "cloud", log_level="warning", with_agent=False) as system:
        cloud = system.cloud
        agent_dir = tmp_path / "agent"
        ca = tmp_path / "gateway-ca.pem"
        ca.write_bytes(cloud.ca.cert_pem)
        enrol = await asyncio.create_subprocess_exec(  # (the cloud runs on this loop: no blocking call)
            PRINTGATE, "agent", "enroll", "--url", cloud.channel.enrol_target, "--token", system.enrolment_token,
            "--data-dir", str(agent_dir), "--ca-cert", str(ca), stderr=asyncio.subprocess.PIPE)
        _out, err = await asyncio.wait_for(enrol.communicate(), 120)
        assert enrol.returncode == 0, err.decode()[-3000:]
        settings = system.agent_settings(agent_dir).to_config() | {"targets": [printer.ip]}
        config = write_config(tmp_path / "agent.toml", settings, log_level="debug")
        log_path = tmp_path / "agent.log"
        agent = await start_agent(config, log_path)
        trust_file = agent_dir / "trust.json"
        try:
            await system.wait_for_devices(minimum=1, timeout=120)  # connected, swept, reported
            await _until(trust_file.exists, "the first trust set verified and kept")
            first = trust_file.read_bytes()
            assert _native_forbidden(agent.pid) == {}
            assert b"agent.signature_child.verdict" in log_path.read_bytes()  # checked apart, not skipped

            cloud.keys.rotate("command-signing", overlap=timedelta(hours=1))
            assert cloud.hub.refresh_keys(force=True)  # the new set goes to the connected agent
            await _until(lambda: trust_file.read_bytes() != first, "the rotation's trust set kept")
            assert len(json.loads(trust_file.read_bytes())["command_keys"]) == 2
            assert _native_forbidden(agent.pid) == {}
            assert agent.returncode is None
        finally:
            agent.terminate()
            await asyncio.wait_for(agent.wait(), 30)
