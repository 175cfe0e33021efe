"""When a flow fails inside mitmproxy (the tunnel is down, a request cannot be read), the browser
gets printgate's page: what happened, what to do, no internal address, no proxy product."""

from __future__ import annotations

import asyncio
import socket

import pytest

from lab.ews import EwsLab, EwsServer
from lab.ports import free_tcp_port

PRINTER = "canonprinter_tm"


@pytest.fixture
def ews(ews_lab: EwsLab) -> EwsServer:
    return ews_lab[PRINTER]


async def test_tunnel_down_gives_a_clear_page_without_internal_details(harness, session_client, ews):
    dead_port = free_tcp_port("127.0.0.1")  # nothing listens: the relay's forward is gone
    c = await session_client(ews, upstream=("127.0.0.1", dead_port))
    r = await c.request("GET", "/status")
    assert r.status_code == 502
    assert "The printer did not answer" in r.text and "reconnects on its own" in r.text
    assert str(dead_port) not in r.text and "127.0.0.1" not in r.text
    assert "mitmproxy" not in r.text.lower()
    assert "mitmproxy" not in " ".join(f"{k}: {v}" for k, v in r.headers.multi_items()).lower()
    failures = [e for e in await harness.events(c.route.session_id) if e.outcome == "failure"]
    assert failures and failures[-1].details["path"] == "/status"
    assert str(dead_port) in failures[-1].details["error"]  # the detail is for the audit trail only


async def test_agent_away_says_so_and_the_audit_error_is_readable(harness, session_client, ews, tmp_path):
    gone = tmp_path / "tunnels" / "s-gone.sock"  # the relay removed the session's socket: no tunnel
    c = await session_client(ews, upstream=(str(gone), 0))
    r = await c.request("GET", "/status")
    assert r.status_code == 502
    assert "The site&#x27;s agent is not connected" in r.text or "The site's agent is not connected" in r.text
    assert "tunnel to the customer" in r.text and "did not answer" not in r.text
    assert str(tmp_path) not in r.text and "mitmproxy" not in r.text.lower()
    failures = [e for e in await harness.events(c.route.session_id) if e.outcome == "failure"]
    assert failures and failures[-1].details["path"] == "/status"
    error = failures[-1].details["error"]
    assert "agent is not connected" in error and "Errno" not in error, error


async def test_unreadable_request_gets_a_plain_page(harness, session_client, ews):
    c = await session_client(ews)
    loop = asyncio.get_running_loop()
    with socket.create_connection(("127.0.0.1", harness.proxy.port), timeout=10) as sock:
        sock.setblocking(False)
        await loop.sock_sendall(sock, (f"GET / HTTP/1.1\r\nHost: {c.netloc}\r\nContent-Length: nope\r\n\r\n").encode())
        answer = b""
        while chunk := await asyncio.wait_for(loop.sock_recv(sock, 65536), 10):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b"could not be completed" in body
    assert b"mitmproxy" not in answer.lower()
