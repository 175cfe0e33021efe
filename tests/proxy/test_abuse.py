"""The proxy under abuse, with raw sockets: request-line forms, smuggling framing, bodies
without a session, slowloris, connection floods, failing addons and damaged launch links.

Every attack goes to the real proxy (a shared one, or one built for the test
with tight limits) in front of ``RawDevice``, a device that logs each request
head it receives; the assertions are what the attacker saw, what reached the
device (nothing), what the audit trail holds, and that the session still works.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.proxy.connection_limits import ConnectionLimits
from gateway.proxy.limits import ProxyLimits
from gateway.proxy.routes import RouteTable, SessionRoute
from gateway.proxy.server import DwaProxy
from lab.ews import EwsLab, EwsServer
from printgate.testing.audit import ReadableAuditLog
from printgate.testing.database import migrated, sqlite_url
from tests.proxy.conftest import DWA_DOMAIN, ProxyHarness, SessionClient, exchange, status_of
from tests.proxy.raw_device import RawDevice

PRINTER = "jetdirect_m130nw"


@pytest.fixture
def ews(ews_lab: EwsLab) -> EwsServer:
    return ews_lab[PRINTER]


@pytest.fixture
async def device() -> AsyncIterator[RawDevice]:
    d = RawDevice()
    await d.start()
    yield d
    await d.aclose()


@pytest.fixture
async def signed_in(harness: ProxyHarness, ews: EwsServer, device: RawDevice) -> AsyncIterator[SessionClient]:
    """A real session whose tunnel ends at the logging device; launched (cookie in hand)."""
    route = harness.open_session(ews, upstream=("127.0.0.1", device.port), device_scheme="http")
    client = SessionClient(harness, route)
    await client.launch()
    yield client
    await client.aclose()


def head(method_target: str, host: str, cookie: str | None = None, extra: str = "") -> bytes:
    lines = [f"{method_target} HTTP/1.1", f"Host: {host}"]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    if extra:
        lines.append(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def audit_rules(harness: ProxyHarness, session_id: str) -> list[str]:
    return [str(e.details.get("rule", "")) for e in await harness.events(session_id)]


async def still_works(client: SessionClient) -> None:
    ok = await client.request("GET", "/")
    assert ok.status_code == 200 and "Device home" in ok.text


# --- request line ---------------------------------------------------------------------------


async def test_absolute_form_to_an_internal_address_is_refused(harness, signed_in, device):
    port = harness.proxy.port
    answer = await exchange(port, head("GET http://127.0.0.1:5432/", signed_in.netloc, signed_in.cookie))
    assert status_of(answer) == 400 and b"another server" in answer
    assert device.requests == [], device.request_lines
    assert "request.absolute_form" in await audit_rules(harness, signed_in.route.session_id)
    await still_works(signed_in)


async def test_absolute_form_naming_the_session_host_reaches_the_device_in_origin_form(harness, signed_in, device):
    answer = await exchange(harness.proxy.port,
                            head(f"GET http://{signed_in.netloc}/status?x=1", signed_in.netloc, signed_in.cookie))
    assert status_of(answer) == 200, answer[:200]
    assert device.request_lines == [b"GET /status?x=1 HTTP/1.1"]
    assert b"127.0.0.1" not in device.requests[0].head


async def test_connect_to_an_internal_address_is_refused(harness, signed_in, device):
    answer = await exchange(harness.proxy.port,
                            head("CONNECT 127.0.0.1:5432", "127.0.0.1:5432") + b"\x16\x03\x01 hello postgres")
    assert 400 <= status_of(answer) < 500, answer[:200]
    assert device.connections == 0
    await still_works(signed_in)


async def test_connect_with_the_session_host_is_refused(harness, signed_in, device):
    answer = await exchange(harness.proxy.port,
                            head(f"CONNECT {signed_in.netloc}", signed_in.netloc, signed_in.cookie) + b"GET / HTTP/1.1\r\n\r\n")
    assert 400 <= status_of(answer) < 500, answer[:200]
    assert device.requests == []


async def test_asterisk_form_is_refused(harness, signed_in, device):
    answer = await exchange(harness.proxy.port, head("OPTIONS *", signed_in.netloc, signed_in.cookie))
    assert status_of(answer) == 400
    assert device.requests == []
    assert "request.target" in await audit_rules(harness, signed_in.route.session_id)


# --- smuggling --------------------------------------------------------------------------------


SMUGGLED = b"GET /admin/secret HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize("framing", [
    "Content-Length: 4\r\nTransfer-Encoding: chunked",  # CL.TE
    "Transfer-Encoding: chunked\r\nContent-Length: 4",  # TE.CL
    "Content-Length: 4\r\nContent-Length: 40",  # duplicate, differing
    "Content-Length: 40\r\nContent-Length: 40",  # duplicate, same value
    "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity",  # two codings
    "Transfer-Encoding: xchunked",  # obfuscated coding
])
async def test_ambiguous_framing_never_reaches_the_device(harness, signed_in, device, framing):
    body = b"0\r\n\r\n" + SMUGGLED
    request = head("POST /api/settings", signed_in.netloc, signed_in.cookie,
                   f"Content-Type: text/plain\r\n{framing}") + body
    answer = await exchange(harness.proxy.port, request)
    assert status_of(answer) == 400, answer[:300]
    assert device.requests == [], device.request_lines
    await still_works(signed_in)


async def test_two_host_headers_are_refused(harness, signed_in, device):
    request = head("GET /", signed_in.netloc, signed_in.cookie, "Host: 127.0.0.1:5432")
    answer = await exchange(harness.proxy.port, request)
    assert status_of(answer) in (400, 404)  # refused either as bad framing or as no such session
    assert device.requests == []


# --- bodies without a session ----------------------------------------------------------------


async def _send_chunked_without_cookie(port: int, host: str, total: int) -> tuple[bytes, int]:
    """Headers first, then up to ``total`` bytes of chunked body; (answer, body bytes the proxy took)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head("POST /api/settings", host, None, "Content-Type: text/plain\r\nTransfer-Encoding: chunked"))
    await writer.drain()
    answer = b""
    async with asyncio.timeout(5):  # answered on the headers: no body sent yet
        while b"\r\n\r\n" not in answer:
            chunk = await reader.read(65536)
            assert chunk, "the proxy closed without an answer"
            answer += chunk
    chunk = b"%x\r\n%s\r\n" % (65536, b"A" * 65536)
    sent = 0
    try:
        async with asyncio.timeout(20):
            while sent < total:
                writer.write(chunk)
                await writer.drain()
                sent += 65536
    except (ConnectionError, TimeoutError):
        pass
    writer.close()
    return answer, sent


async def test_chunked_upload_without_a_cookie_is_answered_on_its_headers_and_cut_off(harness, signed_in, device):
    answer, sent = await _send_chunked_without_cookie(harness.proxy.port, signed_in.netloc, 40 * 1024 * 1024)
    assert status_of(answer) == 401
    assert sent < 8 * 1024 * 1024, f"the proxy took {sent} bytes of a body it had refused"
    assert device.requests == []
    rules = await audit_rules(harness, signed_in.route.session_id)
    assert "session.unauthenticated" in rules
    await still_works(signed_in)


async def test_chunked_upload_to_an_unknown_session_host_is_answered_on_its_headers(harness, device):
    answer, sent = await _send_chunked_without_cookie(harness.proxy.port, f"s-nosuch.{DWA_DOMAIN}", 40 * 1024 * 1024)
    assert status_of(answer) == 404
    assert sent < 8 * 1024 * 1024
    assert device.connections == 0


async def test_chunked_upload_in_a_session_is_refused_once_past_every_allowed_size_not_buffered(
        harness, signed_in, device):
    reader, writer = await asyncio.open_connection("127.0.0.1", harness.proxy.port)
    writer.write(head("POST /api/settings", signed_in.netloc, signed_in.cookie,
                      "Content-Type: text/plain\r\nTransfer-Encoding: chunked"))
    chunk = b"%x\r\n%s\r\n" % (65536, b"A" * 65536)
    sent, answer = 0, b""
    try:
        async with asyncio.timeout(20):
            while sent < 40 * 1024 * 1024 and b"\r\n\r\n" not in answer:
                writer.write(chunk)
                await writer.drain()
                sent += 65536
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.005):
                        answer += await reader.read(65536)
    except (ConnectionError, TimeoutError):
        pass
    with contextlib.suppress(ConnectionError, TimeoutError):
        async with asyncio.timeout(2):
            while b"\r\n\r\n" not in answer and (more := await reader.read(65536)):
                answer += more
    writer.close()
    assert status_of(answer) == 403, answer[:300]
    assert sent < 8 * 1024 * 1024, f"the proxy took {sent} bytes of a body it had refused"
    assert device.requests == []
    events = await harness.events(signed_in.route.session_id)
    blocked = [e for e in events if e.type == "dwa.transfer_blocked"]
    assert len(blocked) == 1 and blocked[0].details["rule"] == "upload.too_large"
    await still_works(signed_in)


# --- launch links -----------------------------------------------------------------------------


async def test_launch_with_invalid_percent_encoding_posted_with_a_body_is_refused(harness, signed_in, device):
    body = b"firmware=" + b"B" * 2000
    request = head("POST /__printgate/launch?token=abc%ff%fe", signed_in.netloc, None,
                   f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}") + body
    answer = await exchange(harness.proxy.port, request)
    assert status_of(answer) == 405
    assert device.requests == [] and device.connections == 0


async def test_launch_with_invalid_percent_encoding_is_refused(harness, signed_in, device):
    answer = await exchange(harness.proxy.port, head("GET /__printgate/launch?token=%ff%c3%28x", signed_in.netloc))
    assert status_of(answer) == 403 and b"Set-Cookie" not in answer and b"set-cookie" not in answer
    assert device.requests == []
    await still_works(signed_in)


# --- connections: timeouts and cap ---------------------------------------------------------


@pytest.fixture(scope="module")
async def own_audit(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ReadableAuditLog]:
    async with migrated(sqlite_url(tmp_path_factory.mktemp("abuse-audit") / "audit.db")) as db:
        yield ReadableAuditLog(db, None)


async def _noop(*_a: Any) -> None:
    return None


@pytest.fixture
async def tight_proxy(own_audit: ReadableAuditLog) -> AsyncIterator[DwaProxy]:
    """A proxy of its own with short deadlines and a small per-source cap."""
    proxy = DwaProxy(
        "127.0.0.1", 0, dwa_domain=DWA_DOMAIN, routes=RouteTable(), audit=own_audit, on_end_request=_noop,
        limits=ProxyLimits(sweep_interval_s=0.2),
        connection_limits=ConnectionLimits(header_timeout_s=1.0, idle_timeout_s=2.0, request_timeout_s=3.0,
                                           max_connections_per_source=40, check_interval_s=0.2,
                                           max_refused_bodies_per_source=5),
    )
    async with proxy:
        yield proxy


async def _open_many(port: int, n: int, first_bytes: bytes) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    conns = []
    for _ in range(n):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(first_bytes)
        conns.append((reader, writer))
    return conns


async def _still_open(conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]], byte: bytes) -> int:
    """Send one more byte on each; count the connections the proxy has not closed."""
    for _r, w in conns:
        with contextlib.suppress(ConnectionError):
            w.write(byte)
    await asyncio.sleep(0.3)
    open_ = 0
    for reader, _w in conns:
        try:
            async with asyncio.timeout(0.05):
                data = await reader.read(1)
            if data:
                open_ += 1  # an answer: not closed yet (not expected here)
        except TimeoutError:
            open_ += 1
        except ConnectionError:
            pass
    return open_


async def test_slowloris_connections_are_closed_after_the_header_timeout(tight_proxy):
    conns = []
    for source in range(5):  # 5 sources x 100 connections = 500 slow clients
        for _ in range(100):
            reader, writer = await asyncio.open_connection("127.0.0.1", tight_proxy.port,
                                                           local_addr=(f"127.0.3.{source + 1}", 0))
            writer.write(b"GET / HTTP/1.1\r\nHost: s-x.dwa.localhost\r\n")
            conns.append((reader, writer))
    assert tight_proxy.connections is not None
    for _ in range(6):  # trickle a header line every half second, as slowloris does
        await asyncio.sleep(0.5)
        for _r, w in conns:
            with contextlib.suppress(ConnectionError):
                w.write(b"X-a: b\r\n")
    assert await _still_open(conns, b"X") == 0
    assert tight_proxy.connections.open_connections == 0
    for _r, w in conns:
        w.close()


async def test_connections_over_the_per_source_cap_are_refused(tight_proxy):
    conns = await _open_many(tight_proxy.port, 60, b"GET / HTTP/1.1\r\n")
    await asyncio.sleep(0.3)
    assert await _still_open(conns, b"X") <= 40
    assert tight_proxy.connections is not None and tight_proxy.connections.refused >= 20
    # another source still gets in
    answer = await exchange(tight_proxy.port, head("GET /", f"s-x.{DWA_DOMAIN}"), wait_s=1)
    assert status_of(answer) == 404
    for _r, w in conns:
        w.close()


async def test_a_trickled_body_is_cut_at_the_request_timeout(tight_proxy, ews, device):
    route = SessionRoute("trickle1", tight_proxy.session_host("trickle1"), "127.0.0.1", device.port, ews.origin,
                         "http", None, ews_expiry(), 600, "dev", "cust")
    tight_proxy.routes.add(route)
    token = tight_proxy.routes.issue_launch_token("trickle1")
    answer = await exchange(tight_proxy.port, head(f"GET /__printgate/launch?token={token}", route.host + f":{tight_proxy.port}"))
    at = answer.lower().index(b"set-cookie: ") + len(b"set-cookie: ")
    cookie = answer[at:].split(b";", 1)[0].decode()
    reader, writer = await asyncio.open_connection("127.0.0.1", tight_proxy.port)
    writer.write(head("POST /api/settings", route.host + f":{tight_proxy.port}", cookie,
                      "Content-Type: text/plain\r\nContent-Length: 1000"))
    started = time.monotonic()
    closed = False
    try:
        while time.monotonic() - started < 8:
            writer.write(b"a")
            await asyncio.sleep(0.2)
            if reader.at_eof():
                closed = True
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.01):
                    if await reader.read(1) == b"":
                        closed = True
                        break
    except ConnectionError:  # reset by the proxy: closed too
        closed = True
    writer.close()
    assert closed, "a body trickled for 8 s kept its connection (request timeout 3 s)"
    assert device.requests == []


async def test_a_source_that_keeps_sending_refused_uploads_is_refused_at_connect(tight_proxy, own_audit):
    host = f"s-nosuch.{DWA_DOMAIN}"
    upload = head("POST /api/settings", host, None, "Content-Type: text/plain\r\nContent-Length: 100000")
    statuses = []
    for _ in range(5):
        reader, writer = await asyncio.open_connection("127.0.0.1", tight_proxy.port, local_addr=("127.0.5.1", 0))
        writer.write(upload + b"A" * 1000)
        statuses.append(status_of(await reader.read(200)))
        writer.close()
    assert statuses == [404] * 5
    reader, writer = await asyncio.open_connection("127.0.0.1", tight_proxy.port, local_addr=("127.0.5.1", 0))
    writer.write(head("GET /", host))
    with contextlib.suppress(ConnectionError):
        assert await asyncio.wait_for(reader.read(200), 3) == b""  # closed at connect, no answer
    writer.close()
    assert tight_proxy.connections is not None and tight_proxy.connections.throttled >= 1
    # another source is not affected
    reader, writer = await asyncio.open_connection("127.0.0.1", tight_proxy.port, local_addr=("127.0.5.2", 0))
    writer.write(head("GET /", host))
    assert status_of(await asyncio.wait_for(reader.read(200), 3)) == 404
    writer.close()
    await tight_proxy.flush_audit()
    throttled = [e for e in await own_audit.events() if e.type == "dwa.source_throttled"]
    assert throttled and throttled[-1].details["refused_bodies"] == 5


class SlowAudit:
    """The real audit sink behind a 3 s delay (a busy audit store)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def append(self, event: Any) -> Any:
        await asyncio.sleep(3)
        return await self._inner.append(event)


def _rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize("opening", [
    "POST /api/settings|Transfer-Encoding: chunked",  # an upload without a session
    "GET /|",  # a complete request, then bytes pipelined behind it
])
async def test_bytes_pushed_while_a_refusal_waits_for_the_audit_store_are_not_queued(own_audit, opening):
    """While the refusal of a request without a session waits for its audit write, the proxy
    reads nothing more from that client (mitmproxy would queue all of it in memory)."""
    target, _, extra = opening.partition("|")
    proxy = DwaProxy("127.0.0.1", 0, dwa_domain=DWA_DOMAIN, routes=RouteTable(), audit=SlowAudit(own_audit),
                     on_end_request=_noop)
    async with proxy:
        before = _rss_mb()
        chunk = b"%x\r\n%s\r\n" % (65536, b"A" * 65536)

        async def push() -> int:
            _reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(head(target, f"s-nosuch.{DWA_DOMAIN}", None, extra))
            sent = 0
            with contextlib.suppress(ConnectionError, TimeoutError):
                async with asyncio.timeout(2.5):  # all within the audit write's 3 s
                    while sent < 40 * 1024 * 1024:
                        writer.write(chunk)
                        await writer.drain()
                        sent += 65536
            writer.close()
            return sent

        await asyncio.gather(*(push() for _ in range(20)))
        growth = _rss_mb() - before
    assert growth < 50, f"the proxy grew by {growth:.0f} MB while refusals waited for the audit store"


def ews_expiry() -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) + timedelta(minutes=5)


# --- fail closed ------------------------------------------------------------------------------


class Exploding:
    """An addon whose one hook raises, as a bug in any check would."""

    name = "exploding"

    def __init__(self, hook: str) -> None:
        name, _, kind = hook.partition(":")
        setattr(self, name, self._boom_async if kind == "async" else self._boom)

    async def _boom_async(self, flow: Any) -> None:
        await asyncio.sleep(0)
        self._boom(flow)

    def _boom(self, flow: Any) -> None:
        if flow.request.path.startswith("/__printgate/launch"):
            return  # the session is entered first
        raise UnicodeEncodeError("utf-8", "\udcff", 0, 1, "injected")


@pytest.fixture
async def exploding_proxy(request: pytest.FixtureRequest, own_audit: ReadableAuditLog,
                          monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[DwaProxy]:
    """A real proxy with ``Exploding(hook)`` right after the session check."""
    import gateway.proxy.server as server_module
    from gateway.proxy.addons.session_auth import SessionAuth

    original = server_module.default_addons

    def with_failing_addon(*a: Any, **kw: Any) -> list[object]:
        pipeline = original(*a, **kw)
        at = next(i for i, addon in enumerate(pipeline) if isinstance(addon, SessionAuth)) + 1
        return [*pipeline[:at], Exploding(request.param), *pipeline[at:]]

    monkeypatch.setattr(server_module, "default_addons", with_failing_addon)
    proxy = DwaProxy("127.0.0.1", 0, dwa_domain=DWA_DOMAIN, routes=RouteTable(), audit=own_audit,
                     on_end_request=_noop)
    async with proxy:
        yield proxy


async def _session_on(proxy: DwaProxy, ews: EwsServer, device: RawDevice, sid: str) -> tuple[str, str]:
    """(host header, cookie) of a launched session on ``proxy`` towards ``device``."""
    route = SessionRoute(sid, proxy.session_host(sid), "127.0.0.1", device.port, ews.origin,
                         "http", None, ews_expiry(), 600, "dev", "cust")
    proxy.routes.add(route)
    netloc = proxy.deps.public.netloc(route.host)
    token = proxy.routes.issue_launch_token(sid)
    answer = await exchange(proxy.port, head(f"GET /__printgate/launch?token={token}", netloc), wait_s=1)
    at = answer.lower().index(b"set-cookie: ") + len(b"set-cookie: ")
    cookie = answer[at:].split(b";", 1)[0].decode()
    return netloc, cookie


@pytest.mark.parametrize("exploding_proxy", ["requestheaders", "request", "request:async"], indirect=True)
async def test_an_addon_failing_on_the_request_ends_the_flow_with_a_refusal(exploding_proxy, ews, device, own_audit):
    netloc, cookie = await _session_on(exploding_proxy, ews, device, "failreq1")
    body = b"location=lab"
    answer = await exchange(exploding_proxy.port, head("POST /api/settings", netloc, cookie,
                            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}") + body,
                            wait_s=2)
    assert status_of(answer) == 500 and b"not passed on" in answer
    assert device.requests == [], device.request_lines
    await exploding_proxy.flush_audit()
    records = [e for e in await own_audit.events(session_id="failreq1") if e.details.get("rule") == "proxy.addon_failed"]
    assert records and records[-1].outcome == "blocked" and "exploding" in str(records[-1].details["reason"])


@pytest.mark.parametrize("exploding_proxy", ["responseheaders", "response", "response:async"], indirect=True)
async def test_an_addon_failing_on_the_response_replaces_the_answer_with_a_refusal(exploding_proxy, ews, device,
                                                                                 own_audit):
    netloc, cookie = await _session_on(exploding_proxy, ews, device, "failresp1")
    answer = await exchange(exploding_proxy.port, head("GET /status", netloc, cookie), wait_s=2)
    assert status_of(answer) == 500 and b"Device home" not in answer
    await exploding_proxy.flush_audit()
    records = [e for e in await own_audit.events(session_id="failresp1") if e.details.get("rule") == "proxy.addon_failed"]
    assert records and records[-1].outcome == "blocked"
