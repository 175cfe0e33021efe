"""lab.ports: ports a test server binds later, which nothing else can have taken meanwhile."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
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
    ports = [free_tcp_port() for _ in range(300)]
    assert len(set(ports)) == 300
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
    assert worker_slice(None, None, 10000, 30000) == range(10000, 14000)
    assert worker_slice("gw0", "2", 10000, 30000) == range(14000, 18000)
    assert worker_slice("gw1", "2", 10000, 30000) == range(18000, 22000)
    assert worker_slice("gw1", "4", 10000, 30000) == range(16000, 18000)
    assert worker_slice("master", "2", 10000, 30000) == range(10000, 14000)
    assert worker_slice("gw0", "1", 10000, 10400) == range(10100, 10250)  # a small gap: a quarter


def test_a_worker_started_again_after_one_died_has_a_slice_of_its_own() -> None:
    """xdist names the replacement of a dead worker gw2 (of 2) while gw0 still runs (tester porta)."""
    slices = [set(worker_slice(f"gw{i}", "2", 12000, 32768)) for i in range(4)]
    assert all(not a & b for i, a in enumerate(slices) for b in slices[i + 1:])


_TAKE_AT_ONCE = ("import json, sys; from lab.ports import free_tcp_port; sys.stdin.read(); "
                 "print(json.dumps([free_tcp_port() for _ in range(150)]))")


def test_processes_sharing_a_slice_never_get_the_same_port() -> None:
    """Eight processes without worker variables (one slice of 4,000 ports), each taking 150 ports at
    the same moment from its own random place: the claims keep every port to one of them (without
    them, eight runs of 150 from random places overlap nine times in ten)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    procs = [subprocess.Popen([sys.executable, "-c", _TAKE_AT_ONCE], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(8)]
    for p in procs:  # all started (interpreter up) before any takes a port
        assert p.stdin is not None
        p.stdin.close()
    taken = []
    for p in procs:
        assert p.stdout is not None
        taken.append(json.loads(p.stdout.read()))
        assert p.wait(timeout=60) == 0
    every = [port for ports_ in taken for port in ports_]
    assert len(every) == 1200 and len(set(every)) == 1200


def test_threads_taking_their_process_first_ports_at_once_get_different_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "_next_port", None)
    start = threading.Barrier(24)
    got: list[int] = []

    def take() -> None:
        start.wait()
        got.append(free_tcp_port())

    threads = [threading.Thread(target=take) for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 24


def test_a_claim_holds_for_its_period_and_the_next_and_across_a_periods_turn(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(ports, "CLAIMS", tmp_path / "claims")
    t = 1_000_000 * ports.CLAIM_S + ports.CLAIM_S - 0.1  # the end of a period
    assert ports._claim(15000, now=t)
    assert not ports._claim(15000, now=t)  # claimed
    assert not ports._claim(15000, now=t + 0.2)  # the next period: the claim before it holds
    assert ports._claim(15000, now=t + 2 * ports.CLAIM_S)  # two periods on: free again
    assert ports._claim(15001, now=t)  # another port
