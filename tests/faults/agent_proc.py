"""Run ``printgate agent run`` / ``agent status`` as real processes for the fault tests."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

PRINTGATE = str(Path(sys.executable).with_name("printgate"))


def write_config(path: Path, agent: dict[str, Any]) -> Path:
    lines = ['log_level = "info"', "[agent]"]
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


async def wait_status(config: Path, predicate: Any, *, timeout: float, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = await status(config)
        if predicate(last):
            return last
        await asyncio.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout}s; last status {json.dumps(last, indent=1)[:3000]}")


def queued_ids(data_dir: Path) -> set[str]:
    with sqlite3.connect(data_dir / "readings.sqlite") as db:
        return {i for (i,) in db.execute("SELECT id FROM queued")}


def dropped_count(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "readings.sqlite") as db:
        return int(db.execute("SELECT coalesce(sum(count), 0) FROM drops").fetchone()[0])
