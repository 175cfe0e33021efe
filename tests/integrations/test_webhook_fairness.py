"""Fairness between dealers in the webhook dispatcher (issue 20, F3), with real HTTP receivers on
loopback: dealer d1's twenty endpoints accept the connection and never answer; dealer d2's one
healthy endpoint still gets its event within about two seconds (the per-dealer cap keeps d1 from
occupying the shared pool; dealers take turns). An endpoint that keeps failing is backed off by
its circuit breaker instead of taking a slot on every round."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from integrations.dispatcher import RetryPolicy, WebhookDispatcher
from integrations.endpoints import WebhookEndpoints
from integrations.webhook import WebhookTransport
from lab.ports import free_tcp_port
from printgate.store import outbox
from printgate.store.db import Database
from printgate.testing.audit import RecordingAuditSink
from printgate.testing.tenancy import Tenancy
from printgate.vault import FileKms


@pytest.fixture
async def hanging() -> AsyncIterator[str]:
    """Reads the request, never answers (until the test ends)."""
    held: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        try:
            await reader.read(65536)
            await asyncio.sleep(3600)
        except (ConnectionError, asyncio.CancelledError):
            pass

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        for w in held:
            w.close()


@pytest.fixture
async def healthy() -> AsyncIterator[tuple[str, list[float]]]:
    got: list[float] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            await reader.readexactly(length)
            got.append(time.monotonic())
            writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", got


async def setup(db: Database, tmp_path: Path, transport: WebhookTransport) -> WebhookEndpoints:
    await (Tenancy().chain(dealer="d1", customer="c1", site="s1", agent="a1")
           .device("dev1", "s1", "a1", "10.0.0.5").chain(dealer="d2", customer="c2", site="s2").save(db))
    return WebhookEndpoints(db, FileKms(tmp_path / "vault.key"), RecordingAuditSink(), transport,
                            allow_private=True)


async def enqueue(db: Database, dealer: str, customer: str, n: int) -> None:
    async with db.transaction() as s:
        for i in range(n):
            await outbox.enqueue_outbound(s, kind=outbox.ALERT_OPENED, dealer_id=dealer, customer_id=customer,
                                          site_id=None, device_id=None, payload={"n": i})


async def test_one_dealers_hanging_endpoints_do_not_delay_another_dealer(
        db: Database, tmp_path: Path, hanging: str, healthy: tuple[str, list[float]]) -> None:
    transport = WebhookTransport(timeout=5, allow_private=True)  # a hanging call holds its slot ~10 s
    endpoints = await setup(db, tmp_path, transport)
    for i in range(20):
        await endpoints.add(dealer_id="d1", url=f"{hanging}/hook{i}", description=f"hog {i}", kinds=[], by="t")
    url, got = healthy
    await endpoints.add(dealer_id="d2", url=f"{url}/hook", description="ok", kinds=[], by="t")
    await enqueue(db, "d1", "c1", 3)  # 60 deliveries for d1, all older than d2's
    dispatcher = WebhookDispatcher(db, endpoints.kms, transport, max_in_flight=16, per_endpoint=2,
                                   per_dealer=6, poll_seconds=0.05, policy=RetryPolicy(max_attempts=3))
    runner = asyncio.create_task(dispatcher.run())
    try:
        await asyncio.sleep(0.5)  # d1's hogs are in flight
        started = time.monotonic()
        await enqueue(db, "d2", "c2", 1)
        dispatcher.wake()
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.05)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await transport.aclose()
    assert got, "dealer d2's healthy endpoint got nothing while d1's endpoints hung"
    assert got[0] - started < 2.0


async def test_the_circuit_breaker_backs_off_an_endpoint_that_keeps_failing(db: Database, tmp_path: Path) -> None:
    transport = WebhookTransport(timeout=2, allow_private=True)
    endpoints = await setup(db, tmp_path, transport)
    down = await endpoints.add(dealer_id="d1", url=f"http://127.0.0.1:{free_tcp_port()}/hook", description="down",
                               kinds=[], by="t")
    await enqueue(db, "d1", "c1", 12)  # 12 due deliveries, each refused at once
    dispatcher = WebhookDispatcher(db, endpoints.kms, transport, per_endpoint=2, breaker_failures=3,
                                   breaker_seconds=60, policy=RetryPolicy(max_attempts=5, initial_seconds=600))
    try:
        for _ in range(10):
            await dispatcher.run_once()
    finally:
        await transport.aclose()
    views = await endpoints.deliveries("d1")
    attempted = sum(v.attempts for v in views if v.endpoint_id == down.endpoint.id)
    assert 3 <= attempted <= 4, attempted  # the breaker opened after 3 failures (+1 already in flight)
