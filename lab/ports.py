"""Free loopback ports for lab servers, tests and benchmarks.

A port found free here is closed again before its server binds it. Had it come from the
kernel (bind to port 0), anything else could take it in between: another pytest-xdist
worker asking the same, or any outgoing connection, whose local port the kernel draws
from the same ephemeral range. So ports are handed out *below* that range
(``/proc/sys/net/ipv4/ip_local_port_range``), where the kernel never picks one by
itself, and each xdist worker (``PYTEST_XDIST_WORKER`` of ``PYTEST_XDIST_WORKER_COUNT``)
has a slice of its own. A process outside any worker (a plain ``pytest``, ``printgate lab
run``, or a child a test started with an environment of its own, without the worker's
variables) takes its ports from the first ``OUTSIDE_WORKERS`` of the gap, which no worker
uses. Within a process they go round the slice in turn, so a port is not handed out again
before its server has had time to bind it; a child process starts its round at a random place.
"""

from __future__ import annotations

import itertools
import os
import random
import socket
from collections.abc import Iterator
from pathlib import Path

LOWEST = 10000  # below: well-known and registered services' ports
OUTSIDE_WORKERS = 2000  # ports for processes that are not an xdist worker
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for ports it picks itself (Linux's default when unreadable)."""
    try:
        low, high = (int(x) for x in EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def worker_slice(worker: str | None, count: str | None, low: int, high: int) -> range:
    """This xdist worker's share of ``range(low, high)``, past the part kept for processes that
    are not a worker; that part itself for them (and for unreadable worker variables)."""
    outside = range(low, low + min(OUTSIDE_WORKERS, (high - low) // 4))
    try:
        index, n = int((worker or "").removeprefix("gw")), max(1, int(count or ""))
    except ValueError:
        return outside
    size = (high - outside.stop) // n
    start = outside.stop + (index % n) * size
    return range(start, start + size)


def _candidates() -> Iterator[int]:
    low, high = ephemeral_range()
    # the larger gap outside the kernel's range: below it normally, above it if it starts low
    below, above = (LOWEST, low), (high + 1, 65536)
    lo, hi = below if below[1] - below[0] >= above[1] - above[0] else above
    ports = worker_slice(os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get("PYTEST_XDIST_WORKER_COUNT"), lo, hi)
    if len(ports) < 100:  # the kernel's range covers (nearly) everything: take what it gives
        return itertools.repeat(0)
    start = random.randrange(len(ports))  # spreading, not secrecy
    return itertools.cycle([*ports[start:], *ports[:start]])


_next_port: Iterator[int] | None = None


def _forget_round() -> None:
    global _next_port
    _next_port = None  # a forked child must not walk its parent's round in step with it


os.register_at_fork(after_in_child=_forget_round)


def _free_port(kind: socket.SocketKind, host: str) -> int:
    global _next_port
    if _next_port is None:
        _next_port = _candidates()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for port in itertools.islice(_next_port, 4096):
        with socket.socket(family, kind) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return int(s.getsockname()[1])  # port 0: the one the kernel picked
    raise OSError(f"no free {kind.name} port on {host} in this process's share of the port range")


def free_tcp_port(host: str = "127.0.0.1") -> int:
    return _free_port(socket.SOCK_STREAM, host)


def free_udp_port(host: str = "127.0.0.1") -> int:
    return _free_port(socket.SOCK_DGRAM, host)
