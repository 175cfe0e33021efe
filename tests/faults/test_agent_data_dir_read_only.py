"""An agent whose data dir is on a read-only file system (issue 14 a14): ``printgate agent run``
exits 2 with one line saying which directory cannot be used and why, not a raw
``OSError: [Errno 30]`` traceback from the data-dir lock."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import pytest

from agent.channel.enroll import EnrolledIdentity
from tests.faults.agent_proc import start_agent, write_config


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory holding an (inert) enrolled identity, then bind-mounted read-only (root)."""
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root")
    data = tmp_path / "agent"
    data.mkdir()
    values = {f.name: ("x" if f.type == "str" else 0) for f in fields(EnrolledIdentity)}
    values.update(data_dir=str(data), command_verify_key="00" * 32)
    (data / "identity.json").write_text(json.dumps(values))
    subprocess.run(["mount", "--bind", str(data), str(data)], check=True, capture_output=True, timeout=30)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(data)], check=True, capture_output=True, timeout=30)
        with pytest.raises(OSError):
            (data / "probe").write_text("")
        yield data
    finally:
        subprocess.run(["umount", "-l", str(data)], check=False, capture_output=True, timeout=30)


async def test_a_read_only_data_dir_is_refused_with_one_line_and_exit_2(
    tmp_path: Path, read_only_dir: Path,
) -> None:
    config = write_config(tmp_path / "agent.toml", {
        "cloud_grpc": "127.0.0.1:9", "data_dir": str(read_only_dir), "targets": ["127.0.0.1"]})
    log = tmp_path / "agent.log"
    proc = await start_agent(config, log)
    code = await asyncio.wait_for(proc.wait(), 60)
    said = log.read_text()
    assert code == 2, said
    assert "Traceback" not in said and "Errno" not in said, said
    assert f"cannot use agent data dir {read_only_dir}: Read-only file system" in said, said
    assert "writable [agent] data_dir" in said
    assert len(said.strip().splitlines()) == 1, said
