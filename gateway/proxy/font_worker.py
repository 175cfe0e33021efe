"""Fonts are parsed in a separate process, with a wall-clock bound and one parse per session at a time
(issue 21 round 5, F4).

fontTools is pure Python: a crafted 117 KB WOFF2 (9,000 glyphs of 60 points) costs 5-7 s of CPU to
reconstruct and check, and in a thread of the proxy process it held the GIL against every other
session's pages. Here the parse runs in a worker process (``python -m gateway.proxy.font_worker``:
a plain subprocess, so the proxy's own main module is not imported again, as multiprocessing's
spawn and forkserver would); the proxy waits for the answer in a thread (no GIL held while waiting)
for at most ``parse_timeout(len(data))`` seconds, not counting the worker's start, and a worker that
has not answered by then is killed and the font refused as too complex to check. At most
``MAX_WORKERS`` parses run at once in a proxy process, and a session has at most one of them: its
next font waits behind its own, not in front of another session's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

MAX_WORKERS = 2
# wall-clock bound on one parse: the real web fonts on this machine parse in 0.05-0.6 s per 100 KB
# (a 400 KB Korean font with 17,699 glyphs: 2.6 s); the attacker's font needed 5-7 s for 117 KB
BASE_TIMEOUT_S = 1.0
TIMEOUT_S_PER_KB = 0.008
START_TIMEOUT_S = 20.0  # the worker's interpreter and fontTools loading (0.3-1 s; more under load)
TOO_COMPLEX = "\x00too-complex"
_ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding the gateway package


def parse_timeout(size: int) -> float:
    return BASE_TIMEOUT_S + TIMEOUT_S_PER_KB * size / 1024


def _read_exactly(stream: IO[bytes], n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = stream.read(n - len(out))
        if not chunk:
            raise EOFError
        out += chunk
    return out


def _frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:  # in the worker process
    from gateway.proxy import font_check

    stdout.write(b"R")  # ready: fontTools loaded
    stdout.flush()
    while True:
        try:
            kind = _read_exactly(stdin, int.from_bytes(_read_exactly(stdin, 4), "big")).decode()
            data = _read_exactly(stdin, int.from_bytes(_read_exactly(stdin, 4), "big"))
        except EOFError:
            return
        problem = font_check.font_problem(data, kind or None)
        stdout.write(b"-" if problem is None else b"+" + _frame(problem.encode()))
        stdout.flush()


def _wait_readable(stream: IO[bytes], timeout: float) -> bool:
    ready, _, _ = select.select([stream], [], [], timeout)
    return bool(ready)


@dataclass
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

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(5)
        self.stdin.close()
        self.stdout.close()


@dataclass
class FontParser:
    """Parses fonts in worker processes (see the module's doc)."""

    workers: int = MAX_WORKERS
    _idle: list[_Worker] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _slots: asyncio.Semaphore | None = None
    _per_session: dict[str, tuple[asyncio.Lock, int]] = field(default_factory=dict)
    parses: int = 0
    timeouts: int = 0

    def _take(self) -> _Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    return worker
                worker.kill()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([_ROOT, os.environ.get("PYTHONPATH", "")]))
        process = subprocess.Popen([sys.executable, "-m", "gateway.proxy.font_worker"], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, bufsize=0)
        worker = _Worker(process)
        if not _wait_readable(worker.stdout, START_TIMEOUT_S) or worker.stdout.read(1) != b"R":
            worker.kill()
            raise OSError("the font check process did not start")
        return worker

    def _round_trip(self, data: bytes, kind: str | None, timeout: float) -> str | None:
        try:
            worker = self._take()
        except OSError:
            return "a font whose check could not start"
        try:
            worker.stdin.write(_frame((kind or "").encode()) + _frame(data))
            worker.stdin.flush()
            if not _wait_readable(worker.stdout, timeout):
                self.timeouts += 1
                worker.kill()
                return TOO_COMPLEX
            answer: str | None = None
            if _read_exactly(worker.stdout, 1) == b"+":
                answer = _read_exactly(worker.stdout, int.from_bytes(_read_exactly(worker.stdout, 4), "big")).decode()
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


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
