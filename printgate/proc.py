"""Processes: children that never outlive their parent (Linux ``PR_SET_PDEATHSIG``), and
whether a recorded process id is still running."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no orphans after a crash or ``kill -9``).

    Call first thing in a child process's ``__main__``; a no-op where ``prctl`` is missing.
    """
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def pid_alive(pid: object) -> bool:
    """Whether a process with this id runs on this host (signal 0; one owned by another user counts).

    Anything but a positive ``int`` (a missing or corrupt runtime record) is not a process."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
