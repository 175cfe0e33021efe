"""Stopping the child processes a lab, test or benchmark started."""

from __future__ import annotations

import subprocess
from typing import Any


def stop_processes(*procs: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM each, wait up to ``timeout`` seconds for it, SIGKILL the ones still running."""
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
