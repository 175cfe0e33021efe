"""Heavy body checks off the event loop, fairly shared between sessions (issue 21 round 5 F5).

A crafted 4 MB page costs the body checks their whole CPU budget (0.25 s, ~1 s of wall clock on
a loaded host); run on the event loop, every other session waited that long per fetch (another
session's page: 15 ms -> 2.6 s with four attacker fetchers). A thread does not help: the checks
are long C calls (one regular expression over a 4 MB run held the GIL ~250 ms) and pure Python.

So a body above ``OFFLOAD_MIN_BYTES`` whose verdict is not remembered is checked in a worker
process (``forkserver``, the check modules preloaded; one pool per proxy process, started at the
first such body): the event loop only pickles the body over a pipe (~1 ms of its time for 4 MB).
Fairness: at most one such check in flight per session (the session's next one waits for it),
``slots`` in flight per proxy process in all (the pool has that many workers; the others wait,
first come first served). Bounds: a CPU budget (``CPU_S``: twice the inline one) and a wall-clock
bound ``wall_s`` within the worker; the proxy gives up ``GRACE_S`` after that (the worker is killed
and the pool started afresh): the body is refused as too complex to check, failing closed.
Smaller bodies are checked inline as before (a 32 KB page costs ~1-2 ms: less than the hop).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import spawn as mp_spawn
from typing import Any, TypeVar

from printgate.logs import get_logger

log = get_logger(__name__)

OFFLOAD_MIN_BYTES = 32 * 1024  # inline below: the checks cost about 1-2 ms there
WALL_S = 2.0  # wall clock a check may take in the worker
# CPU a check may take in the worker: twice the inline budget. It no longer holds the event loop,
# and running beside the proxy (cache, SMT) a crafted page of 0.18 s inline measured over 0.25 s
CPU_S = 0.5
GRACE_S = 3.0  # past WALL_S + GRACE_S the worker is killed (stuck in long C calls on a loaded host)
START_S = 60.0  # a new pool's first worker must be up within this (importing the checks: ~1 s)
SLOTS = 1  # heavy checks in flight per proxy process (each a worker: one core at most)
PRELOAD = ["gateway.proxy.addons.block_downloads"]

T = TypeVar("T")


class CheckUnavailable(Exception):
    """The check could not run (the worker died or overran its bound): the caller refuses."""


_executor: ProcessPoolExecutor | None = None
_executor_workers = 0
_executor_ready: Future[None] | None = None
_starting = threading.Lock()


def _ready() -> None:
    """Run first in a new pool: its worker is up (the check modules are preloaded)."""


@contextlib.contextmanager
def _without_main() -> Iterator[None]:
    """Workers started inside do not import the proxy's ``__main__`` again: forkserver (and spawn)
    children run the parent's main script as ``__mp_main__`` first, and a script without a main
    guard (a test harness, an embedding) ran itself again in the worker. The checks need nothing
    from ``__main__``. Only while ``_pool`` starts the worker (the ``ProcessPoolExecutor`` starts
    its workers in ``submit``)."""
    original = mp_spawn.get_preparation_data

    def without_main(name: str) -> dict[str, Any]:
        data = original(name)
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
        return data

    mp_spawn.get_preparation_data = without_main
    try:
        yield
    finally:
        mp_spawn.get_preparation_data = original


def _pool(workers: int) -> tuple[ProcessPoolExecutor, Future[None]]:
    """The process's pool (shared by every proxy of the process; started on first use) and the
    future that says its first worker is up. Called in a thread when there is none: starting the
    forkserver and its first worker waits for the preloaded imports (1-3 s on a loaded host)."""
    global _executor, _executor_workers, _executor_ready
    with _starting, _without_main():
        current = _running(workers)
        if current is not None:
            return current
        ctx = multiprocessing.get_context("forkserver")  # never fork a process with threads
        ctx.set_forkserver_preload(PRELOAD)
        _executor = ProcessPoolExecutor(workers, mp_context=ctx)
        _executor_workers = workers
        _executor_ready = _executor.submit(_ready)
        return _executor, _executor_ready


def _running(workers: int) -> tuple[ProcessPoolExecutor, Future[None]] | None:
    if _executor is None or _executor_ready is None or _executor_workers != workers:
        return None
    return _executor, _executor_ready


def _discard(pool: ProcessPoolExecutor) -> None:
    """Kill the pool's workers (one is stuck) and forget the pool: the next check starts another."""
    global _executor
    if _executor is pool:
        _executor = None
    procs = list(getattr(pool, "_processes", {}).values())  # no public way before Python 3.14
    for proc in procs:
        pid = getattr(proc, "pid", None)
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    pool.shutdown(wait=False, cancel_futures=True)


class CheckPool:
    """Per proxy (its event loop): the session queues and the overall slots in front of the pool."""

    def __init__(self, slots: int = SLOTS, wall_s: float = WALL_S, grace_s: float = GRACE_S) -> None:
        self.slots = slots
        self.wall_s = wall_s
        self.grace_s = grace_s
        self._slots: asyncio.Semaphore | None = None
        self._sessions: dict[str, tuple[asyncio.Lock, int]] = {}

    async def run(self, session_id: str, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` in a worker process, after the session's previous heavy check and
        within the overall slots; ``CheckUnavailable`` when it could not give an answer."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.slots)
        lock, waiting = self._sessions.get(session_id) or (asyncio.Lock(), 0)
        self._sessions[session_id] = lock, waiting + 1
        try:
            async with lock, self._slots:
                return await self._submit(func, args)
        finally:
            lock, waiting = self._sessions[session_id]
            if waiting <= 1:
                del self._sessions[session_id]
            else:
                self._sessions[session_id] = lock, waiting - 1

    def in_flight(self) -> int:
        """Sessions with a heavy check running or waiting (for tests and status)."""
        return len(self._sessions)

    async def _submit(self, func: Callable[..., T], args: tuple[Any, ...]) -> T:
        running = _running(self.slots)
        pool, ready = running if running is not None else await asyncio.to_thread(_pool, self.slots)
        try:  # a pool's start is not the check's time (shielded: other checks wait for it too)
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(ready)), START_S)
            future = pool.submit(func, *args)
        except (BrokenProcessPool, RuntimeError, TimeoutError) as exc:  # dead, shut down, no start
            _discard(pool)
            raise CheckUnavailable(f"the check worker is not available ({type(exc).__name__})") from exc
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.wall_s + self.grace_s)
        except TimeoutError as exc:
            log.warning("dwa.check_worker_killed", wall_s=self.wall_s + self.grace_s)
            _discard(pool)
            raise CheckUnavailable(f"it is too complex to check within {self.wall_s + self.grace_s:.1f} s") from exc
        except BrokenProcessPool as exc:
            log.error("dwa.check_worker_died", error=repr(exc))
            _discard(pool)
            raise CheckUnavailable("the check worker died") from exc
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this request was cancelled (the client went away)
            raise CheckUnavailable("the check worker was stopped") from None  # another check's kill
