"""One agent per data directory: an exclusive ``flock`` on ``<data_dir>/agent.lock`` for the process's life.

Two agents on one data dir would share the readings queue and overwrite each other's drop counts
and status. The lock is taken before anything in the directory is opened; the second agent is
refused with a message naming the first one's pid (written into the lock file). The kernel drops
the lock when the process ends, however it ends, so a stale file never blocks a restart.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from printgate.errors import ConfigError

LOCK_NAME = "agent.lock"


class DataDirLock:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise ``ConfigError`` naming the agent holding it (or saying why the
        directory cannot be used: read-only, not ours)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:  # read-only file system, no permission, a file where the dir should be
            raise ConfigError(
                f"cannot use agent data dir {self.path.parent}: {exc.strerror or exc} "
                f"(opening {self.path.name}); the agent needs a writable [agent] data_dir, "
                "owned by the user it runs as") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError(
                f"another agent (pid {holder}) is already running with data dir {self.path.parent}; "
                "stop it first, or give this one its own [agent] data_dir") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
