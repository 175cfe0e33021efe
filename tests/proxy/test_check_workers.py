"""The heavy checks' worker processes (``gateway.proxy.check_workers``): real workers, real checks.

They go with the proxy: ``DwaProxy.aclose`` kills every worker its BlockDownloads started (before,
the font and body workers lived on until the proxy's process exited). A worker is reused while
idle, killed when busy at ``close``; its answer is JSON of a known shape, decoded strictly.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from mitmproxy import http

from gateway.proxy import check_workers
from gateway.proxy.addons.block_downloads import BlockDownloads
from gateway.proxy.check_workers import (
    CheckUnavailable,
    CheckWorkers,
    _worker_env,
    body_workers,
    decode_answer,
    font_workers,
)
from gateway.proxy.limits import ProxyLimits
from printgate.testing.audit import ReadableAuditLog
from tests.proxy.budget_harness import budget_proxy
from tests.proxy.hostile_device import HostileDevice
from tests.proxy.test_r4_alphabets import technician
from tests.proxy.test_r4_fonts import REAL_WOFF2
from tests.proxy.test_r5_fairness import ORDINARY, block_downloads
from tests.proxy.test_r5_fonts import FONT_FETCH, SLOW
from tests.unit.gateway.proxy.addons.flows import decision, flow, route


def check_worker_pids() -> set[int]:
    """The check worker processes alive among this process's children (from /proc, not from the
    proxy's own bookkeeping)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # state, ppid, ...
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and b"gateway.proxy.check_workers" in cmdline:
            found.add(int(entry.name))
    return found


class WorkerDevice(HostileDevice):
    """A large page (checked in a body worker) and a font its style sheet names (a font worker)."""

    def routes(self, app: web.Application) -> None:

        async def page(_request: web.Request) -> web.Response:
            return web.Response(body=ORDINARY, headers={"content-type": "text/html"})

        async def css(_request: web.Request) -> web.Response:
            return web.Response(text="@font-face{font-family:w;src:url(/w/font.woff2)}", content_type="text/css")

        async def font(_request: web.Request) -> web.Response:
            return web.Response(body=REAL_WOFF2, headers={"content-type": "font/woff2"})

        app.router.add_get("/w/page", page)
        app.router.add_get("/w/site.css", css)
        app.router.add_get("/w/font.woff2", font)


@pytest.fixture(scope="module")
async def device() -> AsyncIterator[WorkerDevice]:
    async with WorkerDevice() as d:
        yield d


async def test_no_check_worker_outlives_the_proxy(audit_db: ReadableAuditLog, device: WorkerDevice) -> None:
    others = check_worker_pids()  # the shared proxy's workers, if any: not this proxy's
    async with budget_proxy(audit_db, ProxyLimits().session_budget) as h:
        client = await technician(h, device)
        try:
            page = await client.request("GET", "/w/page")
            assert page.status_code == 200 and "Toner 42 %" in page.text
            assert (await client.request("GET", "/w/site.css")).status_code == 200
            font = await client.request("GET", "/w/font.woff2", headers=FONT_FETCH)
            assert font.status_code == 200, font.text[:300]
        finally:
            await client.aclose()
        mine = check_worker_pids() - others
        assert len(mine) == 2, mine  # one body worker, one font worker, idle now
    # the old code: both still alive here (until the test process exits)
    assert not mine & check_worker_pids()


async def test_a_body_worker_is_up_before_the_first_large_page_and_judges_a_page_once(
        audit_db: ReadableAuditLog, device: WorkerDevice) -> None:
    others = check_worker_pids()
    async with budget_proxy(audit_db, ProxyLimits().session_budget) as h:
        for _ in range(600):  # started with the proxy, before any request (the old code: at the first page)
            if check_worker_pids() - others:
                break
            await asyncio.sleep(0.1)
        started = check_worker_pids() - others
        assert len(started) == 1, started
        workers = block_downloads(h).check_pool
        assert workers is not None and workers.calls == 0
        client = await technician(h, device)
        try:  # the same new page eight times at once in one session: judged once, the others wait
            pages = await asyncio.gather(*(client.request("GET", "/w/page") for _ in range(8)))
        finally:
            await client.aclose()
        assert all(p.status_code == 200 and "Toner 42 %" in p.text for p in pages)
        assert workers.calls == 1  # the old code judged it again in each request's turn: 8
        assert check_worker_pids() - others == started  # the worker started ahead served it


async def test_an_idle_worker_is_reused_and_a_busy_one_killed_at_close() -> None:
    others = check_worker_pids()
    workers = CheckWorkers("font", 1, lambda *_args: 60.0)
    assert await workers.run("s", REAL_WOFF2, "woff2") is None
    assert await workers.run("s", REAL_WOFF2, "woff2") is None
    mine = check_worker_pids() - others
    assert len(mine) == 1, mine  # the second parse ran in the first one's worker
    slow = asyncio.create_task(workers.run("s", SLOW, "woff2"))  # ~3 s of CPU
    await asyncio.sleep(0.5)
    workers.close()
    with pytest.raises(CheckUnavailable):
        await slow
    assert not mine & check_worker_pids()
    with pytest.raises(CheckUnavailable, match="shut down"):  # nothing new starts after close
        await workers.run("s", REAL_WOFF2, "woff2")
    assert not check_worker_pids() - others


async def test_a_font_check_over_its_bound_is_killed() -> None:
    workers = font_workers()
    try:
        with pytest.raises(CheckUnavailable, match="too complex"):
            await workers.run("s", SLOW, "woff2")  # 63 KB: a bound of 1.5 s, ~3 s of CPU
        assert workers.timeouts == 1
        assert await workers.run("s", REAL_WOFF2, "woff2") is None  # a new worker
    finally:
        workers.close()


@pytest.mark.parametrize(("kind", "raw"), [
    ("font", b"1"), ("font", b'["x"]'), ("font", b"\xff"),
    ("body", b"null"), ("body", b'[null, 1]'), ("body", b'["fonts", true]'), ("body", b'[["a", "b"], true]'),
    ("body", b'[["a", "b", true], true]'), ("body", b'[["a", "b", NaN], true]'), ("body", b'[["a", "b", 1.5], true]'),
    ("body", b'[null, true, 1]'),
])
def test_an_answer_of_another_shape_is_refused(kind: str, raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode_answer(kind, raw)


def test_the_answers_of_the_known_shapes() -> None:
    assert decode_answer("font", b"null") is None
    assert decode_answer("font", b'"not a font file"') == "not a font file"
    assert decode_answer("body", b"[null, true]") == (None, True)
    assert decode_answer("body", b'["font", true]') == ("font", True)
    assert decode_answer("body", b'[["download.binary", "binary", 40000], false]') == (
        ("download.binary", "binary", 40000), False)


def test_what_a_check_prints_does_not_reach_the_answers() -> None:
    """A library printing on stdout in the worker must not corrupt (or forge) the answer frames."""
    script = ("import sys; from gateway.proxy import check_workers as c; "
              "c.KINDS['print'] = c.Kind('builtins', 'print', c.KINDS['font'].decode); c.main('print')")
    request = pickle.dumps(('["forged"]',))
    done = subprocess.run([sys.executable, "-c", script], input=len(request).to_bytes(4, "big") + request,
                          capture_output=True, timeout=60, check=True)
    assert done.stdout == b"R+" + (4).to_bytes(4, "big") + b"null"  # print's None, nothing printed
    assert b'["forged"]' in done.stderr


@pytest.mark.parametrize("outer", [None, "", "/opt/x:", ":/opt/x", "/opt/x::/opt/y"])
def test_the_workers_import_path_has_no_empty_entry(monkeypatch: pytest.MonkeyPatch, outer: str | None) -> None:
    """An empty entry is the working directory to Python: a ``json.py`` there answered for the
    checks when the proxy ran without PYTHONPATH (tester a6r)."""
    if outer is None:
        monkeypatch.delenv("PYTHONPATH", raising=False)
    else:
        monkeypatch.setenv("PYTHONPATH", outer)
    entries = _worker_env()["PYTHONPATH"].split(os.pathsep)
    assert "" not in entries and entries[0] == str(Path(__file__).resolve().parents[2])


async def test_a_worker_still_starting_is_killed_by_close() -> None:
    others = check_worker_pids()
    workers = body_workers()
    starting = asyncio.create_task(workers.prestart())
    for _ in range(2000):  # spawned, still importing its checks (0.3-1 s)
        if check_worker_pids() - others:
            break
        await asyncio.sleep(0.005)
    assert check_worker_pids() - others
    workers.close()
    await asyncio.sleep(0.1)
    assert not check_worker_pids() - others  # the old code: alive until its start finished
    await starting


async def test_a_font_parse_that_overran_is_refused_again_to_its_session_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """A parse past its wall-clock cap (a starved worker) says more about the host's load than
    about the font: remembered for the session that saw it, not refusing the font to every other
    session."""
    monkeypatch.setattr(check_workers, "WALL_FACTOR", 0.001)  # the cap passes long before the CPU bound
    downloads = BlockDownloads(ProxyLimits())
    downloads.check_pool = None
    loaded = CheckWorkers("font", 1, lambda *_args: 1.0)  # every parse overruns its wall-clock cap
    idle = downloads.font_parser
    try:
        downloads.font_parser = loaded
        assert await _fetch_font(downloads, "a") == (403, "download.too_complex")
        assert await _fetch_font(downloads, "a") == (403, "download.too_complex")
        assert loaded.calls == 1  # remembered for that session: not parsed again
        downloads.font_parser = idle  # the host is idle again
        monkeypatch.setattr(check_workers, "WALL_FACTOR", 4.0)
        assert await _fetch_font(downloads, "b") == (200, None)  # the old code: too_complex for everyone
        assert idle.calls == 1
    finally:
        loaded.close()
        idle.close()


async def test_a_font_over_its_cpu_bound_is_refused_to_every_session_after_one_parse() -> None:
    """Its CPU bound used up is the font's doing (load only stretches the wall clock): one parse."""
    downloads = BlockDownloads(ProxyLimits())
    downloads.check_pool = None
    downloads.font_parser.close()
    downloads.font_parser = CheckWorkers("font", 1, lambda *_args: 0.02)  # far less CPU than a parse
    try:
        assert await _fetch_font(downloads, "a") == (403, "download.too_complex")
        assert await _fetch_font(downloads, "b") == (403, "download.too_complex")
        assert downloads.font_parser.calls == 1
    finally:
        downloads.font_parser.close()


async def test_a_parse_on_a_starved_worker_is_bounded_by_cpu_not_the_clock() -> None:
    """A worker that gets no CPU (stopped: a loaded host at its worst) is not refused at its bound
    of CPU seconds but at the wall-clock cap; one that gets its CPU answers (tester a6r's
    real font refused at 1.5 s under a parallel test run)."""
    workers = CheckWorkers("font", 1, lambda *_args: 0.5)
    try:
        assert await workers.run("s", REAL_WOFF2, "woff2") is None  # up, and a normal parse
        worker = next(iter(workers._all))
        os.kill(worker.process.pid, signal.SIGSTOP)  # no CPU from now on
        loop = asyncio.get_running_loop()
        loop.call_later(1.0, os.kill, worker.process.pid, signal.SIGCONT)  # 2x the bound, < the cap
        started = time.monotonic()
        assert await workers.run("s", REAL_WOFF2, "woff2") is None  # the old code: too complex at 0.5 s
        assert 1.0 <= time.monotonic() - started < 2.0 and workers.timeouts == 0
    finally:
        workers.close()


async def _fetch_font(downloads: BlockDownloads, session_id: str) -> tuple[int, str | None]:
    """The font through BlockDownloads for a request of ``session_id`` whose style sheet named it."""
    downloads.fonts.record(session_id, b"@font-face{src:url(/f.woff2)}", "http://127.0.0.1:1/site.css")
    f = flow("GET", "/f.woff2", headers=FONT_FETCH, with_route=route(session_id=session_id))
    f.response = http.Response.make(200, REAL_WOFF2, {"content-type": "font/woff2"})
    pending = downloads.response(f)
    if pending is not None:
        await pending
    found = decision(f)
    assert f.response is not None
    return f.response.status_code, found.rule if found is not None else None


_PROXY_KILLED_MID_PARSE = """
import asyncio, sys
from gateway.proxy.check_workers import font_workers

async def main():
    workers = font_workers()
    call = asyncio.ensure_future(workers.run("s", sys.stdin.buffer.read(), "woff2"))
    while not workers._all:  # the worker is up and has the font
        await asyncio.sleep(0.01)
    print(next(iter(workers._all)).process.pid, flush=True)
    await call
asyncio.run(main())
"""


async def test_a_busy_worker_ends_when_its_proxy_is_killed() -> None:
    """SIGKILL (the OOM killer, the worker pool's death signal): ``done`` never runs; the worker
    in the middle of a parse ends with its proxy instead of finishing as an orphan (tester a6r)."""
    proxy = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _PROXY_KILLED_MID_PARSE, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, cwd=str(Path(__file__).resolve().parents[2]))
    assert proxy.stdin is not None and proxy.stdout is not None
    proxy.stdin.write(SLOW)  # a font of ~3 s of CPU to check
    proxy.stdin.close()
    worker = int(await asyncio.wait_for(proxy.stdout.readline(), 60))
    proxy.kill()
    await proxy.wait()
    for _ in range(40):  # the worker looks for its parent every 0.5 s (the parse needs ~3 s of CPU)
        if not Path(f"/proc/{worker}").exists() or Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            break
        await asyncio.sleep(0.05)
    else:
        os.kill(worker, 9)
        raise AssertionError("the check worker outlived its killed proxy by 2 s")
