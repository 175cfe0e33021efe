"""lab.ports: ports a test server binds later, which nothing else can have taken meanwhile."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lab import ports
from lab.ports import ephemeral_range, free_tcp_port, free_udp_port, worker_slice

_TAKE = "import json; from lab.ports import free_tcp_port; print(json.dumps([free_tcp_port() for _ in range(300)]))"


def _ports_of(worker: str | None, count: str | None) -> list[int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    if worker is not None and count is not None:
        env |= {"PYTEST_XDIST_WORKER": worker, "PYTEST_XDIST_WORKER_COUNT": count}
    out = subprocess.run([sys.executable, "-c", _TAKE], env=env, capture_output=True, text=True, check=True,
                         timeout=60)
    return list(json.loads(out.stdout))


def test_xdist_workers_get_disjoint_ports_outside_the_kernels_own_range() -> None:
    """Two workers asking at once never get the same port, and the kernel never hands one of
    them to an outgoing connection or a bind to port 0 (its ephemeral range)."""
    low, high = ephemeral_range()
    one, two = _ports_of("gw0", "2"), _ports_of("gw1", "2")
    assert not set(one) & set(two)
    assert len(set(one)) == len(one) == 300 and len(set(two)) == 300
    assert all(not low <= p <= high for p in one + two)


def test_a_process_outside_the_workers_never_takes_a_workers_port() -> None:
    """A child a test starts with an environment of its own (no worker variables, as
    `printgate lab run` under tests/lab) picks ports no worker is given, for 2 or 3 workers."""
    low, high = ephemeral_range()
    outside = set(_ports_of(None, None))
    assert len(outside) == 300 and all(not low <= p <= high for p in outside)
    for count in ("2", "3"):
        for index in range(int(count)):
            slice_ = worker_slice(f"gw{index}", count, ports.LOWEST, low)
            assert not outside & set(slice_)


def test_a_port_is_not_handed_out_again_before_its_server_binds_it() -> None:
    ports = [free_tcp_port() for _ in range(500)]
    assert len(set(ports)) == 500
    udp = free_udp_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", udp))


def test_a_port_in_use_is_skipped() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        assert all(free_tcp_port() != busy for _ in range(200))


def test_a_forked_child_does_not_repeat_its_parents_round() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its ports to the parent, then out without running pytest's exit
        os.write(write, json.dumps([free_tcp_port() for _ in range(50)]).encode())
        os._exit(0)
    os.close(write)
    parent = [free_tcp_port() for _ in range(50)]
    os.waitpid(pid, 0)
    with os.fdopen(read) as r:
        child = json.loads(r.read())
    assert parent != child  # without the reset both walk the same round, port for port


def test_a_kernel_range_covering_everything_falls_back_to_its_ports(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    everything = tmp_path / "ip_local_port_range"
    everything.write_text("1024\t65535\n")
    monkeypatch.setattr(ports, "EPHEMERAL_RANGE", everything)
    monkeypatch.setattr(ports, "_next_port", None)
    port = free_tcp_port()
    assert 1024 <= port <= 65535
    monkeypatch.setattr(ports, "_next_port", None)  # the next test starts its own round


def test_slices_split_the_range_past_the_part_for_processes_outside_the_workers() -> None:
    assert worker_slice(None, None, 10000, 30000) == range(10000, 12000)
    assert worker_slice("gw0", "2", 10000, 30000) == range(12000, 21000)
    assert worker_slice("gw1", "2", 10000, 30000) == range(21000, 30000)
    assert worker_slice("gw1", "4", 10000, 30000) == range(16500, 21000)
    assert worker_slice("master", "2", 10000, 30000) == range(10000, 12000)
    assert worker_slice("gw0", "1", 10000, 10400) == range(10100, 10400)  # a small gap: a quarter
