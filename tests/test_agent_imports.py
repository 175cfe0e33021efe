"""The agent's import graph stays light (issue 17, item 6: <= 60 MB RSS on a Raspberry Pi).

``printgate agent run`` is started as deployed (the console script's ``main`` with the agent's
argv) in a fresh interpreter, then imports what its service loop imports (``agent.service``);
``sys.modules`` must then hold none of the cloud's heavy packages (SQLAlchemy, FastAPI, mitmproxy,
...) and none of what only a remote session needs (asyncssh, pyOpenSSL: loaded with the first
tunnel). ``benchmarks/agent_footprint.py`` measures the running process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

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
    "cryptography": "~10 MB (its own OpenSSL): loaded with the first signed command or certificate renewal",
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
