"""The proxy as 2 worker processes on one port: real processes, real lab EWS, real audit store.

Connections are spread over the workers by the kernel (SO_REUSEPORT); tests that
need both workers open many connections and check with ``ss`` which worker
process owns each one.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from audit.export import verify_store
from gateway.proxy.limits import ProxyLimits
from gateway.proxy.routes import RouteTable, SessionRoute
from gateway.proxy.workers import ProxyWorkerPool
from lab.ews import EwsLab, EwsServer
from printgate.store.audit import query_records
from printgate.store.db import Database, migrate

PRINTER = "brother_hl5370dw"
DWA_DOMAIN = "dwa.localhost"
CONNECTIONS = 24  # all on one worker by chance: 2 * 2**-24


@dataclass
class Pool:
    pool: ProxyWorkerPool
    routes: RouteTable
    db: Database
    ends: list[str]
    timeouts: list[tuple[str, str]]
    extends: list[str]

    def open_session(self, ews: EwsServer, *, idle_s: int = 600) -> SessionRoute:
        sid = uuid.uuid4().hex[:12]
        route = SessionRoute(
            sid, self.pool.session_host(sid), ews.host, ews.port, ews.origin, ews.scheme,
            ews.cert_fingerprint, datetime.now(UTC) + timedelta(minutes=30), idle_s,
            ews.state.device_name, "ACME Print Customer",
        )
        self.routes.add(route)
        return route

    def netloc(self, route: SessionRoute) -> str:
        return self.pool.public.netloc(route.host)


@pytest.fixture(scope="module")
async def workers(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Pool]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('proxy-workers') / 'audit.db'}"
    await migrate(url)
    db = Database(url)
    routes = RouteTable()
    ends: list[str] = []
    timeouts: list[tuple[str, str]] = []
    extends: list[str] = []

    async def on_end(sid: str) -> None:
        ends.append(sid)

    async def on_timeout(sid: str, reason: str) -> None:
        timeouts.append((sid, reason))

    async def on_extend(sid: str) -> datetime | None:
        extends.append(sid)
        return datetime.now(UTC) + timedelta(hours=2)

    pool = ProxyWorkerPool(
        "127.0.0.1", 0, workers=2, database_url=url, dwa_domain=DWA_DOMAIN, routes=routes,
        on_end_request=on_end, on_session_timeout=on_timeout, on_extend_request=on_extend,
        limits=ProxyLimits(sweep_interval_s=0.2), activity_interval_s=0.1,
    )
    async with pool:
        yield Pool(pool, routes, db, ends, timeouts, extends)
    await db.aclose()


@pytest.fixture
def ews(ews_lab: EwsLab) -> EwsServer:
    return ews_lab[PRINTER]


# --- a small HTTP/1.1 client that keeps its sockets (to see which worker owns each) ----------
class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.local_port = int(writer.get_extra_info("sockname")[1])

    @classmethod
    async def open(cls, port: int) -> Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def request(self, method: str, path: str, host: str, *, cookie: str | None = None,
                      body: bytes = b"", headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
        if cookie:
            lines.append(f"Cookie: {cookie}")
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await self.writer.drain()
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 15)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        hdrs: dict[str, str] = {}
        for line in header_lines:
            if ":" in line:
                k, v = line.split(":", 1)
                hdrs.setdefault(k.strip().lower(), v.strip())
        length = int(hdrs.get("content-length", "0"))
        data = await asyncio.wait_for(self.reader.readexactly(length), 15) if length else b""
        return int(status_line.split()[1]), hdrs, data.decode("utf-8", "replace")

    async def aclose(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except OSError:
            pass


def owners(proxy_port: int) -> dict[int, int]:
    """Client port -> pid of the worker process holding the server side of that connection."""
    out = subprocess.run(
        ["ss", "-Htnp", "state", "established", f"( sport = :{proxy_port} )"],
        check=True, capture_output=True, text=True,
    ).stdout
    found: dict[int, int] = {}
    for line in out.splitlines():
        peer = re.search(r":(\d+)\s+users:", line)
        pid = re.search(r"pid=(\d+)", line)
        if peer and pid:
            found[int(peer.group(1))] = int(pid.group(1))
    return found


async def launch(p: Pool, route: SessionRoute) -> str:
    token = p.routes.issue_launch_token(route.session_id)
    c = await Conn.open(p.pool.port)
    try:
        status, hdrs, _ = await c.request("GET", f"/__printgate/launch?token={token}", p.netloc(route))
    finally:
        await c.aclose()
    assert status == 200
    return hdrs["set-cookie"].split(";", 1)[0]


async def on_many_connections(p: Pool, route: SessionRoute, cookie: str | None, path: str = "/") -> tuple[
    list[tuple[int, str]], set[int]
]:
    """GET ``path`` once on each of CONNECTIONS new connections; (status, body) and the worker pids used."""
    conns = [await Conn.open(p.pool.port) for _ in range(CONNECTIONS)]
    try:
        answers = await asyncio.gather(*(c.request("GET", path, p.netloc(route), cookie=cookie) for c in conns))
        seen = owners(p.pool.port)
        pids = {seen[c.local_port] for c in conns if c.local_port in seen}
    finally:
        for c in conns:
            await c.aclose()
    return [(status, body) for status, _h, body in answers], pids


# --- tests -------------------------------------------------------------------------------
async def test_two_workers_listen_on_one_port(workers: Pool):
    pids = workers.pool.live_pids()
    assert len(pids) == 2 and os.getpid() not in pids


async def test_launch_token_fired_on_20_connections_succeeds_exactly_once(workers: Pool, ews: EwsServer):
    route = workers.open_session(ews)
    token = workers.routes.issue_launch_token(route.session_id)
    conns = [await Conn.open(workers.pool.port) for _ in range(20)]
    try:
        answers = await asyncio.gather(*(
            c.request("GET", f"/__printgate/launch?token={token}", workers.netloc(route)) for c in conns
        ))
    finally:
        for c in conns:
            await c.aclose()
    statuses = sorted(status for status, _h, _b in answers)
    assert statuses == [200] + [403] * 19
    assert sum(1 for _s, h, _b in answers if "set-cookie" in h) == 1


async def test_cookie_from_one_worker_works_on_connections_of_every_worker(workers: Pool, ews: EwsServer):
    route = workers.open_session(ews)
    cookie = await launch(workers, route)
    answers, pids = await on_many_connections(workers, route, cookie)
    assert pids == set(workers.pool.live_pids())
    assert all(status == 200 and "Device home" in body for status, body in answers), answers[:2]
    assert all(ews.origin not in body for _s, body in answers)
    # without the cookie every worker refuses
    refused, _ = await on_many_connections(workers, route, None)
    assert {status for status, _b in refused} == {401}


async def test_removed_route_shows_session_ended_on_every_worker(workers: Pool, ews: EwsServer):
    route = workers.open_session(ews)
    cookie = await launch(workers, route)
    workers.routes.remove(route.session_id, "closed by an administrator")
    await workers.pool.sync()
    answers, pids = await on_many_connections(workers, route, cookie)
    assert pids == set(workers.pool.live_pids())
    for status, body in answers:
        assert status != 200 or "Device home" not in body
        assert "closed by an administrator" in body


async def test_route_added_a_moment_ago_is_served_by_every_worker(workers: Pool, ews: EwsServer):
    route = workers.open_session(ews)  # no sync: a worker that has not seen it yet asks the pool
    token = workers.routes.issue_launch_token(route.session_id)
    c = await Conn.open(workers.pool.port)
    try:
        status, hdrs, _ = await c.request("GET", f"/__printgate/launch?token={token}", workers.netloc(route))
    finally:
        await c.aclose()
    assert status == 200
    answers, _ = await on_many_connections(workers, route, hdrs["set-cookie"].split(";", 1)[0])
    assert {status for status, _b in answers} == {200}


async def test_extend_and_end_reach_the_pool_callbacks(workers: Pool, ews: EwsServer):
    route = workers.open_session(ews)
    cookie = await launch(workers, route)
    c = await Conn.open(workers.pool.port)
    try:
        status, _h, home = await c.request("GET", "/", workers.netloc(route), cookie=cookie,
                                           headers={"Sec-Fetch-Dest": "document"})
        assert status == 200
        csrf = re.search(r"name=csrf value=([0-9a-f]+)", home)
        assert csrf is not None, "the banner carries the CSRF token"
        form = f"csrf={csrf.group(1)}".encode()
        form_headers = {"Content-Type": "application/x-www-form-urlencoded"}
        before = workers.routes.get(route.session_id)
        assert before is not None
        status, _h, _b = await c.request("POST", "/__printgate/extend", workers.netloc(route), cookie=cookie,
                                         body=form, headers=form_headers)
        assert status in (302, 303)
        assert workers.extends[-1] == route.session_id
        after = workers.routes.get(route.session_id)
        assert after is not None and after.expires_at > before.expires_at + timedelta(minutes=60)
        status, _h, body = await c.request("POST", "/__printgate/end", workers.netloc(route), cookie=cookie,
                                           body=form, headers=form_headers)
    finally:
        await c.aclose()
    assert "ended by the technician" in body
    assert workers.ends[-1] == route.session_id
    assert workers.routes.get(route.session_id) is None
    await workers.pool.sync()
    answers, _ = await on_many_connections(workers, route, cookie)
    assert all("ended by the technician" in b for _s, b in answers)


async def test_idle_timeout_counts_activity_seen_by_any_worker(workers: Pool, ews: EwsServer):
    busy = workers.open_session(ews, idle_s=2)
    idle = workers.open_session(ews, idle_s=2)
    cookie = await launch(workers, busy)
    await launch(workers, idle)  # launched, then never used
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline:  # new connections: the requests land on both workers
        answers, _ = await on_many_connections(workers, busy, cookie, "/status")
        assert {s for s, _b in answers} == {200}
        await asyncio.sleep(0.3)
    assert workers.routes.get(busy.session_id) is not None, "activity on the workers kept it alive"
    assert workers.routes.get(idle.session_id) is None
    assert (idle.session_id, "the session was idle for too long") in workers.timeouts
    for _ in range(40):  # quiet now: it times out
        if workers.routes.get(busy.session_id) is None:
            break
        await asyncio.sleep(0.2)
    assert (busy.session_id, "the session was idle for too long") in workers.timeouts


async def test_audit_records_of_both_workers_verify(workers: Pool, ews: EwsServer):
    route = workers.open_session(ews)
    cookie = await launch(workers, route)
    answers, pids = await on_many_connections(workers, route, cookie)
    assert len(pids) == 2 and {s for s, _b in answers} == {200}
    await workers.pool.flush_audit()
    rows = await query_records(workers.db, session_id=route.session_id, types=["dwa.request"])
    assert len(rows) == CONNECTIONS + 1  # every request, from both workers, plus the launch
    report = await verify_store(workers.db, None)
    assert report.ok, report.problem


async def test_killed_worker_is_replaced(workers: Pool, ews: EwsServer):
    route = workers.open_session(ews)
    cookie = await launch(workers, route)
    victim = workers.pool.live_pids()[0]
    os.kill(victim, signal.SIGKILL)
    for _ in range(150):
        pids = workers.pool.live_pids()
        if len(pids) == 2 and victim not in pids:
            break
        await asyncio.sleep(0.1)
    assert len(pids) == 2 and victim not in pids
    answers, seen = await on_many_connections(workers, route, cookie)
    assert seen == set(pids)  # the new worker has the route and the cookie
    assert {s for s, _b in answers} == {200}


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def test_workers_die_with_a_killed_parent(tmp_path: Path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    await migrate(url)
    script = textwrap.dedent(f"""
        import asyncio, sys
        from gateway.proxy.routes import RouteTable
        from gateway.proxy.workers import ProxyWorkerPool
        async def main():
            async def end(_sid): return None
            pool = ProxyWorkerPool("127.0.0.1", 0, workers=2, database_url={url!r},
                                   dwa_domain="dwa.localhost", routes=RouteTable(), on_end_request=end)
            await pool.start()
            print("PIDS", *pool.live_pids(), flush=True)
            await asyncio.sleep(60)
        asyncio.run(main())
    """)
    root = Path(__file__).resolve().parents[2]
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, cwd=root, stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert parent.stdout is not None
        pids: list[int] = []
        for _ in range(200):  # log lines come first
            line = (await asyncio.wait_for(parent.stdout.readline(), 60)).decode()
            if line.startswith("PIDS") or not line:
                pids = [int(x) for x in line.split()[1:]]
                break
        assert len(pids) == 2 and all(_alive(p) for p in pids)
    finally:
        parent.kill()
        await parent.wait()
    for _ in range(50):
        if not any(_alive(p) for p in pids):
            break
        await asyncio.sleep(0.1)
    assert not any(_alive(p) for p in pids), "worker processes outlived their pool"


async def test_a_dropped_credential_leaves_every_worker_and_the_session_keeps_working(workers: Pool,
                                                                                        ews_lab: EwsLab):
    """Forbid/erase (issue 19 follow-up, item 3): the route without its login reaches every worker;
    they stop signing in at once and the browser's session cookie stays valid everywhere."""
    from dataclasses import replace

    from lab.ews.device_login import PASSWORD, USERNAME
    from printgate.domain.credentials import DeviceLogin, LoginKind

    ews = ews_lab["ricoh_mpc3002"]
    ews.state.auth.unlock()
    route = replace(workers.open_session(ews), vendor="Ricoh", customer_id="cust-w",
                    login=DeviceLogin(LoginKind.FORM, USERNAME, PASSWORD))
    workers.routes.add(route)
    cookie = await launch(workers, route)
    await workers.pool.sync()
    answers, pids = await on_many_connections(workers, route, cookie, "/settings")
    assert pids == set(workers.pool.live_pids())
    assert all(status == 200 and "Logged in as admin" in body for status, body in answers), answers[:1]
    assert workers.routes.drop_logins("cust-w") == [route.session_id]
    await workers.pool.sync()
    answers, pids = await on_many_connections(workers, route, cookie, "/settings")
    assert pids == set(workers.pool.live_pids())
    assert {status for status, _b in answers} == {302}, answers[:1]  # the device's own login page
    assert all("Logged in as admin" not in body for _s, body in answers)


async def test_a_secret_typed_on_one_worker_is_not_masked_by_the_others(workers: Pool, ews_lab: EwsLab):
    """Issue 19 follow-up: the technician's Location echo must look the same on every worker's
    connections, whether or not it is the stored password."""
    from dataclasses import replace

    from lab.ews.device_login import PASSWORD, USERNAME
    from printgate.domain.credentials import DeviceLogin, LoginKind

    ews = ews_lab["konica_c250i"]
    ews.state.auth.unlock()
    before = ews.state.location
    route = replace(workers.open_session(ews), login=DeviceLogin(LoginKind.BASIC, USERNAME, PASSWORD))
    workers.routes.add(route)
    cookie = await launch(workers, route)
    await workers.pool.sync()
    try:
        c = await Conn.open(workers.pool.port)
        try:
            status, _h, body = await c.request("POST", "/settings", workers.netloc(route), cookie=cookie,
                                               body=f"location=x+{PASSWORD}+y".encode(),
                                               headers={"Content-Type": "application/x-www-form-urlencoded"})
        finally:
            await c.aclose()
        assert status == 200 and f"Location: x {PASSWORD} y" in body
        await asyncio.sleep(0.2)
        await workers.pool.sync()
        answers, pids = await on_many_connections(workers, route, cookie, "/settings")
        assert pids == set(workers.pool.live_pids())
        assert all(f"Location: x {PASSWORD} y" in body for _s, body in answers), answers[:1]
    finally:
        ews.state.location = before


async def test_the_session_budget_is_one_tally_across_workers(workers: Pool, ews: EwsServer):
    """A session whose requests land on both workers still gets one session budget, not one per
    worker: requests of ~6 KB of prose each (within the per-request budget) are allowed until the
    pool's single tally reaches 256 KiB, whichever worker serves them."""
    from urllib.parse import quote_plus

    route = workers.open_session(ews)
    cookie = await launch(workers, route)
    prose = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text()[:5000]
    def path_of(i: int) -> str:  # every request new text (an address sent before costs 1 byte)
        return f"/?note={chr(97 + i // 26)}{chr(97 + i % 26)}+" + quote_plus(prose)

    path = path_of(0)  # under the lab EWS's 8 KB request line
    assert len(path) < 8000
    budget = ProxyLimits().session_budget
    conns = [await Conn.open(workers.pool.port) for _ in range(CONNECTIONS)]
    statuses: list[int] = []
    try:
        for rnd in range(2):
            answers = await asyncio.gather(*(c.request("GET", path_of(rnd * CONNECTIONS + k), workers.netloc(route),
                                                       cookie=cookie) for k, c in enumerate(conns)))
            statuses += [status for status, _h, _b in answers]
        seen = owners(workers.pool.port)
        pids = {seen[c.local_port] for c in conns if c.local_port in seen}
    finally:
        for c in conns:
            await c.aclose()
    assert pids == set(workers.pool.live_pids())  # both workers served the session
    allowed = [s for s in statuses if s != 403]
    # each request costs its address and a few bytes more (which header fields it carries; a
    # worker's first one, the cookie values that worker's ledger had not seen): one tally allows
    # at most budget // len(path) and at least one or two fewer; a tally per worker, twice that
    most = budget // len(path)
    assert most - 2 <= len(allowed) <= most, (len(allowed), most, statuses)
    assert statuses.count(403) == 2 * CONNECTIONS - len(allowed)
    await workers.pool.flush_audit()
    blocked = await query_records(workers.db, session_id=route.session_id, types=["dwa.transfer_blocked"])
    assert len(blocked) == statuses.count(403)
    assert all(r.entry is not None and '"budget.session"' in r.entry for r in blocked)
