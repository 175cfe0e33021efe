"""Outbox → signed webhooks on a real database (SQLite and PostgreSQL) to real HTTP receivers on
loopback: one that checks every signature, one that fails twice then succeeds (retries with
the same event id), one that is down (dead letter, audited, redelivered once it is up), a slow
one that never holds up another endpoint; an event exists only if its transaction committed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response
from sqlalchemy import select, update

from integrations.dispatcher import WEBHOOK_DEAD_LETTER, RetryPolicy, WebhookDispatcher
from integrations.endpoints import DELIVERY_REDELIVERED, ENDPOINT_ADDED, WebhookEndpoints
from integrations.errors import EndpointInvalid, SignatureInvalid
from integrations.webhook import (
    EVENT_HEADER,
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    WebhookTransport,
    verify_signature,
)
from lab.ports import free_tcp_port
from printgate.store import outbox
from printgate.store.db import Database
from printgate.store.models.outbox import OutboxEventRow, WebhookEndpointRow
from printgate.testing.audit import RecordingAuditSink
from printgate.testing.clock import FrozenClock
from printgate.testing.portal import served
from printgate.testing.tenancy import Tenancy
from printgate.vault import FileKms


@dataclass
class Receiver:
    """Records every call; checks the signature with ``secret`` once it is known."""

    secret: str = ""
    fail_first: int = 0  # answer 503 to the first N calls
    delay: float = 0.0
    calls: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            body = await request.body()
            try:
                verify_signature(self.secret.encode(), request.headers[SIGNATURE_HEADER], body)
            except (SignatureInvalid, KeyError):
                self.bad_signatures += 1
                return Response(status_code=401)
            self.calls.append({"id": request.headers[EVENT_ID_HEADER], "kind": request.headers[EVENT_HEADER],
                               "body": json.loads(body), "at": datetime.now(UTC)})
            if self.delay:
                await asyncio.sleep(self.delay)
            if len(self.calls) <= self.fail_first:
                return Response(status_code=503, content=b"try later")
            return Response(status_code=204)

        return app


@dataclass
class World:
    db: Database
    endpoints: WebhookEndpoints
    dispatcher: WebhookDispatcher
    audit: RecordingAuditSink
    clock: FrozenClock
    transport: WebhookTransport


@pytest.fixture
async def world(db: Database, tmp_path: Path) -> AsyncIterator[World]:
    await (Tenancy().chain(dealer="d1", customer="c1", site="s1", agent="a1")
           .device("dev1", "s1", "a1", "10.0.0.5").chain(dealer="d2", customer="c2", site="s2").save(db))
    kms, audit, clock = FileKms(tmp_path / "vault.key"), RecordingAuditSink(), FrozenClock()
    transport = WebhookTransport(timeout=5, allow_private=True)  # receivers on loopback
    dispatcher = WebhookDispatcher(db, kms, transport, audit=audit, clock=clock, poll_seconds=0.05,
                                   policy=RetryPolicy(max_attempts=3, initial_seconds=10, jitter=0.2))
    endpoints = WebhookEndpoints(db, kms, audit, transport, allow_private=True, clock=clock,
                                 on_redeliver=dispatcher.wake)
    yield World(db, endpoints, dispatcher, audit, clock, transport)
    await transport.aclose()


async def enqueue(db: Database, kind: str = outbox.ALERT_OPENED, **payload: Any) -> str:
    async with db.transaction() as s:
        event_id = await outbox.enqueue_for_device(s, kind=kind, device_id="dev1",
                                                   payload=payload or {"code": "jam"})
    assert event_id is not None
    return event_id


async def test_signed_delivery_only_to_the_dealers_endpoints_that_want_the_kind(world: World) -> None:
    alerts, everything, other = Receiver(), Receiver(), Receiver()
    ports = [free_tcp_port() for _ in range(3)]
    async with served(alerts.app(), ports[0]) as a, served(everything.app(), ports[1]) as e, \
            served(other.app(), ports[2]) as o:
        ep_a = await world.endpoints.add(dealer_id="d1", url=f"{a}/hook", description="alerts",
                                         kinds=[outbox.ALERT_OPENED], by="u-admin")
        ep_e = await world.endpoints.add(dealer_id="d1", url=f"{e}/hook", description="all", kinds=[], by="u-admin")
        ep_o = await world.endpoints.add(dealer_id="d2", url=f"{o}/hook", description="d2", kinds=[], by="u-d2")
        alerts.secret, everything.secret, other.secret = ep_a.secret, ep_e.secret, ep_o.secret
        assert ep_a.secret.startswith("whsec_") and ep_a.secret != ep_e.secret
        opened = await enqueue(world.db, outbox.ALERT_OPENED, code="paper_jam", severity="critical")
        ended = await enqueue(world.db, outbox.SESSION_ENDED, session_id="s-1")
        await world.dispatcher.run_once()

    assert [c["id"] for c in alerts.calls] == [opened]
    assert sorted(c["id"] for c in everything.calls) == sorted([opened, ended])
    assert other.calls == [] and alerts.bad_signatures == everything.bad_signatures == 0
    body = alerts.calls[0]["body"]
    assert body["id"] == opened and body["type"] == "alert.opened" == alerts.calls[0]["kind"]
    assert (body["dealer_id"], body["customer_id"], body["site_id"], body["device_id"]) == ("d1", "c1", "s1", "dev1")
    assert body["data"] == {"code": "paper_jam", "severity": "critical", "context": {
        "customer_name": "Customer c1", "site_name": "HQ", "device_name": None, "model": None, "serial": None,
        "ip": "10.0.0.5", "location": None}}
    views = await world.endpoints.deliveries("d1")
    assert {v.status for v in views} == {outbox.DELIVERED} and len(views) == 3
    assert [e.type for e in world.audit.events].count(ENDPOINT_ADDED) == 3


async def test_the_secret_is_stored_sealed_and_a_wrong_secret_fails_the_receiver(world: World) -> None:
    rx = Receiver(secret="not-the-secret")
    async with served(rx.app(), free_tcp_port()) as url:
        new = await world.endpoints.add(dealer_id="d1", url=f"{url}/hook", description="", kinds=[], by="u")
        async with world.db.session() as s:
            sealed = await outbox.endpoint_secret(s, new.endpoint.id)
        assert new.secret.encode() not in sealed.sealed
        await enqueue(world.db)
        await world.dispatcher.run_once()
    assert rx.bad_signatures == 1 and rx.calls == []
    [view] = await world.endpoints.deliveries("d1")
    assert view.status == outbox.DEAD and view.last_status == 401  # 401 will not change by retrying


async def test_a_failing_receiver_is_retried_with_back_off_and_the_same_event_id(world: World) -> None:
    rx = Receiver(fail_first=2)
    async with served(rx.app(), free_tcp_port()) as url:
        rx.secret = (await world.endpoints.add(dealer_id="d1", url=f"{url}/hook", description="",
                                               kinds=[], by="u")).secret
        event_id = await enqueue(world.db)
        await world.dispatcher.run_once()
        assert len(rx.calls) == 1
        await world.dispatcher.run_once()  # not due yet: back-off of ~10 s (± 20 %)
        assert len(rx.calls) == 1
        world.clock.advance(seconds=12.5)
        await world.dispatcher.run_once()
        assert len(rx.calls) == 2
        world.clock.advance(seconds=12.5)
        await world.dispatcher.run_once()  # second back-off is ~20 s: still waiting
        assert len(rx.calls) == 2
        world.clock.advance(seconds=12.5)
        await world.dispatcher.run_once()
    assert [c["id"] for c in rx.calls] == [event_id] * 3
    [view] = await world.endpoints.deliveries("d1")
    assert (view.status, view.attempts, view.last_status) == (outbox.DELIVERED, 3, 204)


async def test_a_dead_receiver_becomes_a_dead_letter_and_is_redelivered_once_up(world: World) -> None:
    port = free_tcp_port()  # nothing listens yet
    rx = Receiver()
    new = await world.endpoints.add(dealer_id="d1", url=f"http://127.0.0.1:{port}/hook", description="",
                                    kinds=[], by="u")
    rx.secret = new.secret
    event_id = await enqueue(world.db)
    for _ in range(3):
        await world.dispatcher.run_once()
        world.clock.advance(seconds=3600)
    [view] = await world.endpoints.deliveries("d1", status=outbox.DEAD)
    assert view.attempts == 3 and "Connect" in view.last_error
    dead = [e for e in world.audit.events if e.type == WEBHOOK_DEAD_LETTER]
    assert len(dead) == 1 and dead[0].details["event"] == event_id and dead[0].dealer_id == "d1"
    await world.dispatcher.run_once()  # a dead letter is not tried again by itself
    with pytest.raises(Exception, match="not found"):  # another dealer cannot redeliver it
        await world.endpoints.redeliver(dealer_id="d2", delivery_id=view.id, by="u-d2")
    async with served(rx.app(), port):
        await world.endpoints.redeliver(dealer_id="d1", delivery_id=view.id, by="u")
        await world.dispatcher.run_once()
    assert [c["id"] for c in rx.calls] == [event_id]
    [again] = await world.endpoints.deliveries("d1")
    assert again.status == outbox.DELIVERED
    assert any(e.type == DELIVERY_REDELIVERED and e.actor == "u" for e in world.audit.events)


async def test_a_slow_receiver_does_not_hold_up_another_endpoint(world: World) -> None:
    slow, fast = Receiver(delay=3.0), Receiver()
    world.dispatcher.per_endpoint = 1
    world.dispatcher._clock = lambda: datetime.now(UTC)
    async with served(slow.app(), free_tcp_port()) as s_url, served(fast.app(), free_tcp_port()) as f_url:
        slow.secret = (await world.endpoints.add(dealer_id="d1", url=f"{s_url}/hook", description="slow",
                                                 kinds=[], by="u")).secret
        fast.secret = (await world.endpoints.add(dealer_id="d1", url=f"{f_url}/hook", description="fast",
                                                 kinds=[], by="u")).secret
        runner = asyncio.create_task(world.dispatcher.run())
        try:
            started = asyncio.get_running_loop().time()
            ids = [await enqueue(world.db, code=f"c{i}") for i in range(5)]
            world.dispatcher.wake()
            while len(fast.calls) < 5:
                await asyncio.sleep(0.02)
                assert asyncio.get_running_loop().time() - started < 2.5, "fast endpoint waited for the slow one"
            assert sorted(c["id"] for c in fast.calls) == sorted(ids)
            assert len(slow.calls) == 1  # one at a time to the slow endpoint
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)


async def test_an_event_exists_only_if_its_transaction_committed(world: World) -> None:
    with pytest.raises(RuntimeError):
        async with world.db.transaction() as s:
            await outbox.enqueue_for_device(s, kind=outbox.ALERT_OPENED, device_id="dev1", payload={})
            raise RuntimeError("the change failed")
    async with world.db.session() as s:
        assert (await s.scalars(select(OutboxEventRow))).all() == []
    with pytest.raises(ValueError, match="unknown outbound event kind"):
        async with world.db.transaction() as s:
            await outbox.enqueue_outbound(s, kind="alert.exploded", dealer_id="d1", customer_id=None,
                                          site_id=None, device_id=None, payload={})


async def test_endpoint_addresses_are_checked(world: World, tmp_path: Path) -> None:
    strict = WebhookEndpoints(world.db, FileKms(tmp_path / "k2"), world.audit, world.transport)
    with pytest.raises(EndpointInvalid, match="non-public"):
        await strict.add(dealer_id="d1", url="http://127.0.0.1:9/hook", description="", kinds=[], by="u")
    with pytest.raises(EndpointInvalid, match="https://"):
        await strict.add(dealer_id="d1", url="gopher://x.example/", description="", kinds=[], by="u")
    with pytest.raises(EndpointInvalid, match="unknown event kinds"):
        await world.endpoints.add(dealer_id="d1", url="http://127.0.0.1:9/", description="",
                                  kinds=["alert.exploded"], by="u")
    assert await world.endpoints.listing("d1") == []


async def test_a_claim_left_by_a_dead_dispatcher_is_delivered_once_its_lease_ran_out(world: World) -> None:
    rx = Receiver()
    async with served(rx.app(), free_tcp_port()) as url:
        rx.secret = (await world.endpoints.add(dealer_id="d1", url=f"{url}/hook", description="",
                                               kinds=[], by="u")).secret
        event_id = await enqueue(world.db)
        async with world.db.transaction() as s:  # another dispatcher fans out, claims, then dies
            await outbox.fan_out(s, now=world.clock())
            [claimed] = await outbox.claim_due(s, now=world.clock(), lease_seconds=world.dispatcher.lease_seconds)
        assert claimed.event.id == event_id
        await world.dispatcher.run_once()
        assert rx.calls == []  # leased: not taken twice at once
        world.clock.advance(seconds=world.dispatcher.lease_seconds + 1)
        await world.dispatcher.run_once()
    assert [c["id"] for c in rx.calls] == [event_id]
    [view] = await world.endpoints.deliveries("d1")
    assert (view.status, view.attempts) == (outbox.DELIVERED, 1)


async def test_a_secret_that_no_longer_unseals_ends_as_a_dead_letter_not_a_loop(world: World) -> None:
    new = await world.endpoints.add(dealer_id="d1", url="http://127.0.0.1:9/hook", description="", kinds=[],
                                    by="u")
    async with world.db.transaction() as s:  # the sealed secret was altered (or the master key replaced)
        await s.execute(update(WebhookEndpointRow).where(WebhookEndpointRow.id == new.endpoint.id)
                        .values(secret_sealed=b"\0" * 60))
    await enqueue(world.db)
    for _ in range(3):
        await world.dispatcher.run_once()
        world.clock.advance(seconds=3600)
    [view] = await world.endpoints.deliveries("d1")
    assert view.status == outbox.DEAD and view.attempts == 3 and "cannot be unsealed" in view.last_error
