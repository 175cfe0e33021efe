"""Heavy checks in worker processes: fair between sessions, bounded in time, gone with the proxy
(issue 21 round 5, F4 and F5).

Two checks are too heavy for the proxy's event loop (or a thread of it: they hold the GIL, in pure
Python or in long C calls):

- ``font``: parsing a font (``font_check.font_problem``; fontTools, pure Python: a crafted 117 KB
  WOFF2 of 9,000 glyphs costs 5-7 s of CPU, the real web fonts 0.05-0.6 s per 100 KB);
- ``body``: the body checks of a large response not judged before
  (``block_downloads.body_verdict_in_worker``; a crafted 4 MB page costs their whole CPU budget,
  ~1 s of wall clock on a loaded host, and other sessions waited that long per fetch).

Each runs in a plain worker process (``python -m gateway.proxy.check_workers <kind>``, the kind's
module preloaded: the proxy's own main module is not imported again, as multiprocessing's spawn
and forkserver would). The arguments go over the worker's stdin (pickled: the proxy's own child),
the answer comes back over its stdout as JSON decoded strictly (the child parses hostile bytes:
its answer is data of a known shape, never objects). The proxy waits in a thread (no GIL held)
for at most the kind's wall-clock bound, not counting the worker's start; a worker that has not
answered by then is killed and the caller told ``CheckOverran`` (it refuses: fail closed). Idle
workers are reused; ``close`` kills every worker (the proxy's shutdown).

Fairness: one heavy check per session at a time (``session_turn``: its next one waits behind its
own, not in front of another session's) and at most ``slots`` in flight per ``CheckWorkers`` in
all (each a worker process: one core at most; the others wait, first come first served).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import pickle
import select
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from printgate.logs import get_logger

log = get_logger(__name__)

START_TIMEOUT_S = 60.0  # a worker's interpreter and its kind's imports (0.3-1 s; more under load)
MAX_ANSWER_BYTES = 64 * 1024  # a verdict or a font problem: a few hundred bytes

# fonts: at most FONT_SLOTS parses at once; the bound grows with the font's size (the real web fonts
# on this machine parse in 0.05-0.6 s per 100 KB, a 400 KB Korean font of 17,699 glyphs in 2.6 s;
# the attacker's font needed 5-7 s for 117 KB)
FONT_SLOTS = 2
BASE_TIMEOUT_S = 1.0
TIMEOUT_S_PER_KB = 0.008

# large bodies: checked in a worker from OFFLOAD_MIN_BYTES (inline below: 1-2 ms); within the worker
# a CPU budget (CPU_S, twice the inline one: beside the proxy a crafted page of 0.18 s inline
# measured over 0.25 s) and a wall-clock bound (WALL_S); the proxy kills it GRACE_S after that
# (stuck in long C calls on a loaded host)
BODY_SLOTS = 1
OFFLOAD_MIN_BYTES = 32 * 1024
WALL_S = 2.0
CPU_S = 0.5
GRACE_S = 3.0

_ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding the gateway package


def parse_timeout(size: int) -> float:
    """The bound on parsing a font of ``size`` bytes (seconds of the worker's CPU; ``WALL_FACTOR``
    times that of wall clock at most)."""
    return BASE_TIMEOUT_S + TIMEOUT_S_PER_KB * size / 1024


class CheckUnavailable(Exception):
    """The check gave no answer (its worker did not start, died or answered nonsense): refuse."""


class CheckOverran(CheckUnavailable):
    """The check ran past its bound (its worker was killed): too complex to check. ``by_cpu``: the
    worker itself used the bound's CPU (the input's doing); else the wall-clock cap passed first
    (the host's load: the worker did not get the CPU)."""

    def __init__(self, message: str, *, by_cpu: bool) -> None:
        super().__init__(message)
        self.by_cpu = by_cpu


WALL_FACTOR = 4.0  # a call's wall-clock cap: this many times its CPU bound (a starved worker)
POLL_S = 0.05  # how often a waiting call looks at its worker's CPU time
_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (``/proc/<pid>/stat``; 0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _await_answer(worker: _Worker, bound: float, started: float) -> CheckOverran | None:
    """Wait until the worker answers (None), it has used ``bound`` seconds of CPU on this call,
    or ``WALL_FACTOR`` times that passed on the wall clock. CPU, not wall time, decides first: on
    a loaded host a real font's parse takes longer on the clock (a 1.5 s bound refused a real font
    in a parallel test run) but not in CPU, and a crafted one costs its CPU whatever the load."""
    pid = worker.process.pid
    before = _cpu_seconds(pid)
    cap = started + bound * WALL_FACTOR
    while not _wait_readable(worker.stdout, min(POLL_S, cap - time.monotonic())):
        if _cpu_seconds(pid) - before > bound:
            return CheckOverran(f"it is too complex to check within {bound:.1f} s of CPU", by_cpu=True)
        if time.monotonic() >= cap:
            return CheckOverran(f"it is too complex to check within {bound * WALL_FACTOR:.1f} s on this busy host",
                                by_cpu=False)
    return None


# --- the answers: JSON of a known shape ------------------------------------------------------------

def _font_answer(answer: object) -> str | None:
    """``font_problem``: None or what the font is."""
    if answer is None or isinstance(answer, str):
        return answer
    raise ValueError("not a font problem")


def _body_answer(answer: object) -> tuple[tuple[str, str, int] | str | None, bool]:
    """``body_verdict_in_worker``: [verdict, keep]; the verdict None, "font" or [rule, reason, size]."""
    if not (isinstance(answer, list) and len(answer) == 2 and isinstance(answer[1], bool)):
        raise ValueError("not a [verdict, keep] pair")
    verdict, keep = answer
    if verdict is None or verdict == "font":
        return verdict, keep
    if (isinstance(verdict, list) and len(verdict) == 3 and isinstance(verdict[0], str)
            and isinstance(verdict[1], str) and type(verdict[2]) is int):
        return (verdict[0], verdict[1], verdict[2]), keep
    raise ValueError("not a verdict")


@dataclass(frozen=True)
class Kind:
    """A check a worker serves: the function (imported in the worker) and its answer's decoder."""

    module: str
    function: str
    decode: Callable[[object], Any]


KINDS = {
    "font": Kind("gateway.proxy.font_check", "font_problem", _font_answer),
    "body": Kind("gateway.proxy.addons.block_downloads", "body_verdict_in_worker", _body_answer),
}


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def decode_answer(kind: str, raw: bytes) -> Any:
    """The worker's answer, strictly: UTF-8 JSON (no NaN), of the kind's shape (else ``ValueError``)."""
    return KINDS[kind].decode(json.loads(raw.decode("utf-8"), parse_constant=_no_constant))


# --- the pipes: length-prefixed frames -------------------------------------------------------------

def _frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


def _read_exactly(stream: IO[bytes], n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = stream.read(n - len(out))
        if not chunk:
            raise EOFError
        out += chunk
    return out


def _read_frame(stream: IO[bytes], limit: int | None = None) -> bytes:
    size = int.from_bytes(_read_exactly(stream, 4), "big")
    if limit is not None and size > limit:
        raise ValueError(f"a frame of {size} bytes")
    return _read_exactly(stream, size)


def serve(kind: str, stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """In the worker process: answer each call with "+" and the JSON of the result, or "!" and the
    exception's name (the caller refuses), until the proxy closes the pipe."""
    spec = KINDS[kind]
    func = getattr(importlib.import_module(spec.module), spec.function)
    stdout.write(b"R")  # ready: the kind's modules are loaded
    stdout.flush()
    while True:
        try:
            args = pickle.loads(_read_frame(stdin))  # noqa: S301 - from the proxy, our parent
        except EOFError:
            return
        try:
            answer = b"+" + _frame(json.dumps(func(*args), allow_nan=False).encode())
        except Exception as exc:  # reported, not fatal: the next call still runs here
            answer = b"!" + _frame(type(exc).__name__.encode())
        stdout.write(answer)
        stdout.flush()


# --- the proxy's side -------------------------------------------------------------------------------

def _wait_readable(stream: IO[bytes], timeout: float) -> bool:
    ready, _, _ = select.select([stream], [], [], max(timeout, 0.0))
    return bool(ready)


@dataclass(eq=False)
class _Worker:
    process: subprocess.Popen[bytes]

    @property
    def stdin(self) -> IO[bytes]:
        assert self.process.stdin is not None
        return self.process.stdin

    @property
    def stdout(self) -> IO[bytes]:
        assert self.process.stdout is not None
        return self.process.stdout

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Kill the process (its pipes stay for the thread that may be reading them)."""
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)

    def kill(self) -> None:
        self.stop()
        self.stdin.close()
        self.stdout.close()


def _worker_env() -> dict[str, str]:
    """The proxy's environment with the gateway's root first on the import path. No empty entry:
    Python reads one as the working directory (``-P`` keeps only the script's directory out), and
    a module there (``json.py``) would have answered for the checks (tester a6r)."""
    entries = [_ROOT, *(e for e in os.environ.get("PYTHONPATH", "").split(os.pathsep) if e)]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(entries))


def _start(kind: str, timeout: float, starting: set[subprocess.Popen[bytes]] | None = None,
           lock: threading.Lock | None = None) -> _Worker:
    """A new worker of ``kind``, up within ``timeout``. While it starts it is in ``starting``
    (under ``lock``), so that ``CheckWorkers.close`` kills it too."""
    env = _worker_env()
    try:
        process = subprocess.Popen([sys.executable, "-P", "-m", "gateway.proxy.check_workers", kind],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                   env=env, bufsize=0)
    except OSError as exc:  # out of processes, memory or file descriptors
        raise CheckUnavailable(f"the {kind} check worker did not start ({exc.strerror})") from exc
    worker = _Worker(process)
    if starting is not None and lock is not None:
        with lock:
            starting.add(process)
    try:
        up = _wait_readable(worker.stdout, timeout) and worker.stdout.read(1) == b"R"
    finally:
        if starting is not None and lock is not None:
            with lock:
                starting.discard(process)
    if not up:
        worker.kill()
        raise CheckUnavailable(f"the {kind} check worker did not start")
    return worker


class CheckWorkers:
    """The worker processes of one kind of check, for one proxy (see the module's doc).

    ``bound(*args)`` is the wall-clock bound of a call with these arguments (seconds)."""

    def __init__(self, kind: str, slots: int, bound: Callable[..., float], *,
                 start_s: float = START_TIMEOUT_S) -> None:
        if kind not in KINDS:
            raise ValueError(f"no check kind {kind!r}")
        self.kind = kind
        self.slots = slots
        self.bound = bound
        self.start_s = start_s
        self.calls = 0
        self.timeouts = 0
        self._slots = asyncio.Semaphore(slots)
        self._sessions: dict[str, tuple[asyncio.Lock, int]] = {}
        self._lock = threading.Lock()  # the worker lists, from the calling threads and close()
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._closed = False
        self._prestarting: asyncio.Future[None] | None = None
        self._starting: set[subprocess.Popen[bytes]] = set()  # workers not up yet (close kills them too)

    @contextlib.asynccontextmanager
    async def session_turn(self, session_id: str) -> AsyncIterator[None]:
        """One heavy check per session at a time: its next one waits here, behind its own."""
        lock, users = self._sessions.get(session_id) or (asyncio.Lock(), 0)
        self._sessions[session_id] = lock, users + 1
        try:
            async with lock:
                yield
        finally:
            lock, users = self._sessions[session_id]
            if users <= 1:
                del self._sessions[session_id]
            else:
                self._sessions[session_id] = lock, users - 1

    def in_flight(self) -> int:
        """Sessions with a heavy check running or waiting (for tests and status)."""
        return len(self._sessions)

    async def run(self, session_id: str, *args: Any) -> Any:
        """``call`` in the session's turn."""
        async with self.session_turn(session_id):
            return await self.call(*args)

    async def call(self, *args: Any) -> Any:
        """The kind's function of ``args`` in a worker process, within the overall slots (call it
        in ``session_turn``); ``CheckOverran`` past the bound, ``CheckUnavailable`` without an
        answer. A slot is given back when the worker is done, even if this caller went away."""
        bound = self.bound(*args)
        if self._prestarting is not None:  # the worker started ahead: this call takes it
            await asyncio.wait([self._prestarting])
        await self._slots.acquire()
        self.calls += 1
        done = asyncio.ensure_future(asyncio.to_thread(self._round_trip, args, bound))
        done.add_done_callback(self._finished)
        return await asyncio.shield(done)

    def _finished(self, done: asyncio.Future[Any]) -> None:
        self._slots.release()
        if not done.cancelled():
            done.exception()  # retrieved here: the caller may have gone away

    def _take(self) -> _Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    return worker
                self._forget(worker)
            if self._closed:
                raise CheckUnavailable("the check workers are shut down")
        worker = _start(self.kind, self.start_s, self._starting, self._lock)
        with self._lock:
            if not self._closed:
                self._all.add(worker)
                return worker
        worker.kill()  # closed while it started
        raise CheckUnavailable("the check workers are shut down")

    async def prestart(self) -> None:
        """Start one idle worker ahead of the first call (the proxy's start), so the first large
        page or font does not wait for an interpreter's start (0.3-1 s; every request queued
        behind it in that session waited too). A call meanwhile waits for it rather than start a
        second one. A failure is logged: the first call starts one."""
        self._prestarting = asyncio.ensure_future(asyncio.to_thread(self._prestart))
        try:
            await asyncio.shield(self._prestarting)
        except (CheckUnavailable, OSError) as exc:
            log.warning("dwa.check_worker_prestart_failed", kind=self.kind, error=str(exc))

    def _prestart(self) -> None:
        with self._lock:
            if self._all or self._closed:
                return
        worker = self._take()
        with self._lock:
            if self._closed:
                self._forget(worker)
            else:
                self._idle.append(worker)

    def _forget(self, worker: _Worker) -> None:
        """Under ``_lock``: a dead or overrun worker, killed and gone from the lists."""
        self._all.discard(worker)
        worker.kill()

    def _round_trip(self, args: tuple[Any, ...], bound: float) -> Any:
        """In a thread: one call on an idle or new worker (the bound starts once it is up)."""
        worker = self._take()
        started = time.monotonic()
        try:
            worker.stdin.write(_frame(pickle.dumps(args, protocol=pickle.HIGHEST_PROTOCOL)))
            worker.stdin.flush()
            overran = _await_answer(worker, bound, started)
            if overran is not None:
                self.timeouts += 1
                log.warning("dwa.check_worker_killed", kind=self.kind, bound_s=round(bound, 2), by_cpu=overran.by_cpu)
                raise overran
            status = _read_exactly(worker.stdout, 1)
            raw = _read_frame(worker.stdout, MAX_ANSWER_BYTES)
            if status != b"+":
                raise CheckUnavailable(f"the check failed in its worker ({raw.decode(errors='replace')[:80]})")
            answer = decode_answer(self.kind, raw)
        except CheckUnavailable:
            with self._lock:
                self._forget(worker)
            raise
        except (EOFError, OSError, ValueError) as exc:  # died (out of memory, killed), or nonsense
            with self._lock:
                self._forget(worker)
            if not self._closed:
                log.error("dwa.check_worker_died", kind=self.kind, error=repr(exc))
            raise CheckUnavailable("the check worker died" if not self._closed
                                   else "the check workers are shut down") from exc
        with self._lock:
            if self._closed:
                self._forget(worker)
            else:
                self._idle.append(worker)
        return answer

    def close(self) -> None:
        """Kill every worker, busy or idle (the proxy stops); later calls are refused."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            busy = self._all.difference(idle)
            self._all.clear()
            starting = list(self._starting)
        for process in starting:  # its thread then finds no answer and the proxy closed
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        for worker in idle:
            worker.kill()
        for worker in busy:
            worker.stop()  # its thread sees the end of the pipe and closes it (``_forget``)


def font_workers() -> CheckWorkers:
    """Font parses: ``call(data, kind)`` -> ``font_check.font_problem(data, kind)``."""
    return CheckWorkers("font", FONT_SLOTS, lambda data, _kind: parse_timeout(len(data)))


def body_workers(wall_s: float = WALL_S, grace_s: float = GRACE_S) -> CheckWorkers:
    """Large bodies: ``run(session_id, mtype, body, limits)`` -> ``body_verdict_in_worker``."""
    return CheckWorkers("body", BODY_SLOTS, lambda *_args: wall_s + grace_s)


def _exit_with(parent: int, every_s: float = 0.5) -> None:
    """In the worker: end the process when the proxy that started it is gone (killed with
    SIGKILL, ``done`` never ran): an idle worker ends at the end of its input, but a busy one
    would finish its call first (up to its bound) as an orphan (tester a6r)."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(kind: str) -> None:
    """The worker's entry: the answers go out on a copy of stdout, and whatever a check library
    prints goes to stderr (discarded), never into the answers."""
    _exit_with(os.getppid())
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(kind, sys.stdin.buffer, answers)


if __name__ == "__main__":
    main(sys.argv[1])
