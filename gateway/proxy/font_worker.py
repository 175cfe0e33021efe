"""Fonts are parsed in a separate process, with a wall-clock bound and one parse per session at a time
(issue 21 round 5, F4).

fontTools is pure Python: a crafted 117 KB WOFF2 (9,000 glyphs of 60 points) costs 5-7 s of CPU to
reconstruct and check, and in a thread of the proxy process it held the GIL against every other
session's pages. Here the parse runs in a worker process (started from a ``forkserver`` that has
fontTools imported, so a new worker costs a fork, not an interpreter start); the proxy waits for the
answer in a thread (no GIL held while waiting) for at most ``parse_timeout(len(data))`` seconds, and
a worker that has not answered by then is killed and the font refused as too complex to check. At
most ``MAX_WORKERS`` parses run at once in a proxy process, and a session has at most one of them:
its next font waits behind its own, not in front of another session's.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from gateway.proxy import font_check

MAX_WORKERS = 2
# wall-clock bound on one parse: the real web fonts on this machine parse in 0.05-0.6 s per 100 KB
# (a 400 KB Korean font with 17,699 glyphs: 2.6 s); the attacker's font needed 5-7 s for 117 KB
BASE_TIMEOUT_S = 1.0
TIMEOUT_S_PER_KB = 0.008
TOO_COMPLEX = "\x00too-complex"


def parse_timeout(size: int) -> float:
    return BASE_TIMEOUT_S + TIMEOUT_S_PER_KB * size / 1024


def _serve(conn: Connection) -> None:  # in the worker process
    while True:
        try:
            data, kind = conn.recv()
        except EOFError:
            return
        conn.send(font_check.font_problem(data, kind))


@dataclass
class _Worker:
    process: Any
    conn: Connection

    def alive(self) -> bool:
        return bool(self.process.is_alive())

    def kill(self) -> None:
        self.process.kill()
        self.process.join(1)
        self.conn.close()


@dataclass
class FontParser:
    """Parses fonts in worker processes (see the module's doc)."""

    workers: int = MAX_WORKERS
    _ctx: Any = None
    _idle: list[_Worker] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _slots: asyncio.Semaphore | None = None
    _per_session: dict[str, tuple[asyncio.Lock, int]] = field(default_factory=dict)
    parses: int = 0
    timeouts: int = 0

    def _context(self) -> Any:
        if self._ctx is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["gateway.proxy.font_worker"])
            self._ctx = ctx
        return self._ctx

    def _take(self) -> _Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    return worker
                worker.kill()
        parent, child = multiprocessing.Pipe()
        process = self._context().Process(target=_serve, args=(child,), daemon=True, name="font-parse")
        process.start()
        child.close()
        return _Worker(process, parent)

    def _round_trip(self, data: bytes, kind: str | None, timeout: float) -> str | None:
        worker = self._take()
        try:
            worker.conn.send((data, kind))
            if not worker.conn.poll(timeout):
                self.timeouts += 1
                worker.kill()
                return TOO_COMPLEX
            answer: str | None = worker.conn.recv()
        except (EOFError, OSError):  # the worker died (out of memory, a crash): refused, not passed
            worker.kill()
            return "a font whose check did not finish"
        with self._lock:
            self._idle.append(worker)
        return answer

    @contextlib.asynccontextmanager
    async def session_turn(self, session_id: str) -> AsyncIterator[None]:
        """One parse per session at a time: its next font waits here, behind its own."""
        mine, users = self._per_session.get(session_id, (asyncio.Lock(), 0))
        self._per_session[session_id] = mine, users + 1
        try:
            async with mine:
                yield
        finally:
            lock, users = self._per_session[session_id]
            if users <= 1:
                del self._per_session[session_id]
            else:
                self._per_session[session_id] = lock, users - 1

    async def problem(self, data: bytes, kind: str | None) -> str | None:
        """``font_check.font_problem`` of ``data``, or ``TOO_COMPLEX`` past the time bound (call
        it inside ``session_turn``)."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.workers)
        async with self._slots:
            self.parses += 1
            return await asyncio.to_thread(self._round_trip, data, kind, parse_timeout(len(data)))

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()
