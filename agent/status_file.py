"""``status.json`` in the agent's data dir: what ``printgate agent status`` shows.

The file is written in place into space reserved while the disk had room, padded
with blanks (valid JSON), so a full disk cannot freeze it: the status that says
"disk full" is the one that has to get through. A write that still fails is
logged and the next one tries again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from printgate.logs import get_logger

log = get_logger("agent.status_file")

RESERVED_BYTES = 256 * 1024


class StatusFile:
    def __init__(self, path: Path, *, reserved: int = RESERVED_BYTES) -> None:
        self.path = path
        self._reserved = reserved
        self._failing = False
        self.last_error: str | None = None  # why the last write failed (None after one succeeded)

    def write(self, status: dict[str, Any]) -> bool:
        """Replace the file's content with ``status``; False (logged once per outage) if it could not."""
        body = json.dumps(status, indent=2).encode()
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                if size < max(self._reserved, len(body)):
                    os.posix_fallocate(fd, 0, max(self._reserved, len(body) * 2))
                    size = os.fstat(fd).st_size
                os.pwrite(fd, body + b" " * (size - len(body)), 0)
            finally:
                os.close(fd)
        except OSError as exc:
            if not self._failing:
                log.error("agent.status_write_failed", path=str(self.path), error=str(exc))
            self._failing = True
            self.last_error = f"status file {self.path} cannot be written: {exc}"
            return False
        if self._failing:
            log.info("agent.status_write_recovered", path=str(self.path))
        self._failing = False
        self.last_error = None
        return True


def read_status(path: Path) -> dict[str, Any]:
    """The last status the agent wrote ({} when there is none); tolerant of a write in progress."""
    for _ in range(5):
        try:
            text = path.read_text()
        except FileNotFoundError:
            return {}
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            continue  # caught mid-write: read again
        return value if isinstance(value, dict) else {}
    return {}
