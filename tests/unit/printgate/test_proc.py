"""``pid_alive``: the one check the gateway's node lease and ``agent status`` use for a recorded pid."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from printgate.proc import pid_alive


def test_this_process_is_alive() -> None:
    assert pid_alive(os.getpid())


def test_a_process_of_another_user_counts_as_alive() -> None:
    if os.getuid() == 0:
        pytest.skip("root may signal every process")
    assert pid_alive(1)  # init: signal 0 is refused (EPERM), the process exists


def test_a_reaped_child_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not pid_alive(child.pid)


@pytest.mark.parametrize("pid", [None, "123", 0, -1, 1.5])
def test_anything_but_a_positive_int_is_not_a_process(pid: object) -> None:
    assert not pid_alive(pid)
