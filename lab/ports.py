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

The slices are not the whole guard: a worker xdist starts again after one died takes the next
name (``gw2`` of 2: a slice of its own, there are slices for twice the count), forked children
and processes outside the workers share slices, and two test runs on one machine have the same
ones. So every port handed out is also *claimed* for 150 to 300 s, across processes, by a file
in ``CLAIMS`` named after the port and the period (``_claim``): a port claimed by anyone else is
passed over. That is long enough for a server a test starts slowly (a Python process under load)
or stops and starts again on the same port (a cloud restart, a database outage) to have it
back; the file names the claiming process (``who_claimed``), for the message of a test whose
server still found its port taken.

A server in the process that wants its port needs none of this: ``lab.sites.serve`` binds
port 0 and reads back the port it got.
"""

from __future__ import annotations

import itertools
import os
import random
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

LOWEST = 10000  # below: well-known and registered services' ports
OUTSIDE_WORKERS = 4000  # ports for processes that are not an xdist worker
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
CLAIMS = Path(f"/tmp/printgate-port-claims-{os.getuid()}")
CLAIM_S = 150  # a claim holds for its period and the next: time for its server to bind, or to restart


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
    slots = 2 * n  # a worker started again after one died is named gw<n>, gw<n+1>, ...
    size = (high - outside.stop) // slots
    start = outside.stop + (index % slots) * size
    return range(start, start + size)


def _candidates() -> Iterator[int]:
    low, high = ephemeral_range()
    # the larger gap outside the kernel's range: below it normally, above it if it starts low
    below, above = (LOWEST, low), (high + 1, 65536)
    lo, hi = below if below[1] - below[0] >= above[1] - above[0] else above
    ports = worker_slice(os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get("PYTEST_XDIST_WORKER_COUNT"), lo, hi)
    if len(ports) < 100:  # many workers: the whole gap, shared (the claims keep them apart)
        ports = range(lo, hi)
    if len(ports) < 100:  # the kernel's range covers (nearly) everything: take what it gives
        return itertools.repeat(0)
    start = random.randrange(len(ports))  # spreading, not secrecy
    return itertools.cycle([*ports[start:], *ports[:start]])


_next_port: Iterator[int] | None = None
_round_lock = threading.Lock()  # one round per process, walked by one thread at a time


def _forget_round() -> None:
    global _next_port, _round_lock
    _next_port = None  # a forked child must not walk its parent's round in step with it
    _round_lock = threading.Lock()  # not held by a thread the child does not have


os.register_at_fork(after_in_child=_forget_round)


def _claim(port: int, now: float | None = None) -> bool:
    """Claim ``port`` for this ``CLAIM_S`` period and the next, for every process of this user: an
    empty file ``<port>.<period>`` created exclusively; then, if a claim of the period before or
    after exists too (two pickers either side of a period's turn), this one is withdrawn. Of two
    racing claims at least one sees the other, so at most one holds."""
    minute = int((time.time() if now is None else now) // CLAIM_S)
    mine = CLAIMS / f"{port}.{minute}"
    try:
        CLAIMS.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(mine, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()} {_command()}\n")
    except FileExistsError:
        return False
    except OSError:  # no place for claims (a read-only /tmp): the slices alone
        return True
    if (CLAIMS / f"{port}.{minute - 1}").exists() or (CLAIMS / f"{port}.{minute + 1}").exists():
        mine.unlink(missing_ok=True)
        return False
    if random.random() < 0.01:  # now and then, the claims of past periods go
        _sweep(minute)
    return True


def _command() -> str:
    try:
        return Path("/proc/self/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()[:300]
    except OSError:
        return "?"


def who_claimed(port: int) -> list[str]:
    """The claims on ``port`` still on disk: ``<port>.<period>: <pid> <command line>``."""
    try:
        paths = sorted(CLAIMS.glob(f"{port}.*"))
        return [f"{path.name}: {path.read_text().strip() or '?'}" for path in paths]
    except OSError:
        return []


def _sweep(minute: int) -> None:
    for path in CLAIMS.iterdir():
        _port, _, of = path.name.partition(".")
        if of.isdigit() and int(of) < minute - 1:
            path.unlink(missing_ok=True)


def _free_port(kind: socket.SocketKind, host: str) -> int:
    global _next_port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with _round_lock:
        if _next_port is None:
            _next_port = _candidates()
        for port in itertools.islice(_next_port, 4096):
            with socket.socket(family, kind) as s:
                try:
                    s.bind((host, port))
                except OSError:
                    continue
                picked = int(s.getsockname()[1])  # port 0: the one the kernel picked
            if port == 0 or _claim(picked):
                return picked
    raise OSError(f"no free {kind.name} port on {host} in this process's share of the port range")


def free_tcp_port(host: str = "127.0.0.1") -> int:
    return _free_port(socket.SOCK_STREAM, host)


def free_udp_port(host: str = "127.0.0.1") -> int:
    return _free_port(socket.SOCK_DGRAM, host)
