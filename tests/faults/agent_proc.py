"""Run ``printgate agent run`` / ``agent status`` as real processes for the fault tests."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from printgate.cli import build_app

PRINTGATE = str(Path(sys.executable).with_name("printgate"))


def write_config(path: Path, agent: dict[str, Any], *, log_level: str = "info") -> Path:
    lines = [f"log_level = {json.dumps(log_level)}", "[agent]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in agent.items() if value is not None]
    path.write_text("\n".join(lines) + "\n")
    return path


async def start_agent(config: Path, log: Path) -> asyncio.subprocess.Process:
    out = open(log, "ab")  # the child keeps its own copy of the descriptor
    try:
        return await asyncio.create_subprocess_exec(PRINTGATE, "agent", "run", "--config", str(config),
                                                    stdout=out, stderr=out)
    finally:
        out.close()


async def stop(proc: asyncio.subprocess.Process, timeout: float = 60) -> float:
    """SIGTERM; the seconds until the process exited."""
    began = time.monotonic()
    proc.terminate()
    await asyncio.wait_for(proc.wait(), timeout)
    return time.monotonic() - began


async def status(config: Path) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        PRINTGATE, "agent", "status", "--config", str(config), "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    value = json.loads(out)
    assert isinstance(value, dict)
    return value


async def status_text(config: Path) -> str:
    proc = await asyncio.create_subprocess_exec(
        PRINTGATE, "agent", "status", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


def status_in_process(config: Path) -> dict[str, Any]:
    """What ``printgate agent status --json`` prints, from the same command run in this process
    (Typer's CliRunner over ``build_app("agent")``, as ``printgate agent ...`` builds it). For
    polling: a process per poll cost 1-3 s of CPU on a loaded 2-core machine, which the agent and
    cloud under test then lacked; ``status`` runs the real command line for what a test asserts."""
    result = CliRunner().invoke(build_app("agent"), ["agent", "status", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    value = json.loads(result.stdout)
    assert isinstance(value, dict)
    return value


async def wait_status(config: Path, predicate: Any, *, timeout: float, what: str) -> dict[str, Any]:
    """The agent's status (``status_in_process``) once ``predicate`` holds for it."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = status_in_process(config)
        if predicate(last):
            return last
        await asyncio.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout}s; last status {json.dumps(last, indent=1)[:3000]}")


def queued_ids(data_dir: Path) -> set[str]:
    with sqlite3.connect(data_dir / "readings.sqlite") as db:
        return {i for (i,) in db.execute("SELECT id FROM queued")}


def dropped_count(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "readings.sqlite") as db:
        return int(db.execute("SELECT coalesce(sum(count), 0) FROM drops").fetchone()[0])
