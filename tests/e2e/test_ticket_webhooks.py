"""The whole system (lab, cloud as `printgate serve` wires it, agent) on SQLite and PostgreSQL:
a dealer's webhook endpoint (added through the cloud's endpoints service, a real receiver on
loopback checking every signature) hears session.opened when the demo technician's session to
a lab printer becomes active and session.ended when it is closed, delivered by the cloud's
supervised dispatcher, with the device's names in data.context; and alert.opened then
alert.cleared (same alert_id) when a lab printer jams and is cleared (SNMP -> agent -> channel ->
ingest -> outbox)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request, Response

from integrations.webhook import EVENT_ID_HEADER, SIGNATURE_HEADER, verify_signature
from lab.catalog import PRINTERS, by_name
from lab.ports import free_tcp_port
from printgate.cli.demo_system import DEMO_DEALER, DemoSystem
from printgate.testing.portal import served
from tests.e2e.conftest import report_alerts_now


@contextlib.asynccontextmanager
async def dealer_receiver(system: DemoSystem, description: str, kinds: list[str]) -> AsyncIterator[list[dict[str, Any]]]:
    """A receiver on loopback (checking every signature and event id) added as an endpoint of the
    demo dealer for ``kinds``: yields the events it got; the endpoint is disabled afterwards."""
    endpoints = system.cloud.webhook_endpoints
    assert endpoints is not None, "the cloud wires the endpoints service"
    secret: dict[str, bytes] = {}
    got: list[dict[str, Any]] = []
    receiver = FastAPI()

    @receiver.post("/psa")
    async def psa(request: Request) -> Response:
        body = await request.body()
        verify_signature(secret["s"], request.headers[SIGNATURE_HEADER], body)
        event = json.loads(body)
        assert event["id"] == request.headers[EVENT_ID_HEADER]
        got.append(event)
        return Response(status_code=204)

    async with served(receiver, free_tcp_port()) as url:
        new = await endpoints.add(dealer_id=DEMO_DEALER.id, url=f"{url}/psa", description=description,
                                  kinds=kinds, by="e2e")
        secret["s"] = new.secret.encode()
        try:
            yield got
        finally:
            await endpoints.set_enabled(dealer_id=DEMO_DEALER.id, endpoint_id=new.endpoint.id, enabled=False,
                                        by="e2e")


async def test_session_events_reach_the_dealers_receiver(system: DemoSystem) -> None:
    assert any(h.name == "webhooks" and h.healthy for h in system.cloud.supervisor.health())
    printer = PRINTERS[0]
    device = await system.device_at(printer.ip)
    async with dealer_receiver(system, "e2e PSA", ["session.opened", "session.ended"]) as got:
        await system.close_all_sessions(reason="a fresh start for the webhook test")
        launch = await system.open_session_as_demo_user(printer.ip)
        session_id = launch.split("//s-", 1)[1].split(".", 1)[0]

        def of(kind: str) -> list[dict[str, Any]]:
            return [e for e in got if e["type"] == kind and e["data"]["session_id"] == session_id]

        await until(lambda: bool(of("session.opened")), "session.opened delivered")
        await system.close_all_sessions(reason="the webhook test is done")
        await until(lambda: bool(of("session.ended")), "session.ended delivered")
    [opened], [ended] = of("session.opened"), of("session.ended")
    assert opened["device_id"] == device.id and opened["data"]["user_id"] == "user-demo-tech"
    assert opened["data"]["context"]["ip"] == printer.ip
    assert ended["data"]["state"] == "closed" and ended["data"]["end_reason"] == "the webhook test is done"
    assert ended["id"] != opened["id"]


async def until(predicate: Any, what: str, timeout: float = 15) -> None:
    for _ in range(int(timeout * 20)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what}")


JAMMING = by_name("jetdirect_m130nw")  # same identity as the lab-jetdirect_m130nw-alerts recording
JAM = "Paper jam in tray 2"


async def test_a_printer_jam_opens_and_clears_a_ticket(system: DemoSystem) -> None:
    device = await system.device_at(JAMMING.ip)
    async with dealer_receiver(system, "e2e alerts", ["alert.opened", "alert.cleared"]) as got:

        def jams(kind: str) -> list[dict[str, Any]]:
            return [e for e in got if e["type"] == kind and e["device_id"] == device.id
                    and e["data"]["description"] == JAM]

        try:
            await system.snmp.swap(JAMMING.ip, "lab-jetdirect_m130nw-alerts")  # the printer jams
            await report_alerts_now(system, device)
            await until(lambda: bool(jams("alert.opened")), "alert.opened delivered")
            await system.snmp.swap(JAMMING.ip, JAMMING.name)  # cleared at the printer
            await report_alerts_now(system, device)
            await until(lambda: bool(jams("alert.cleared")), "alert.cleared delivered")
        finally:
            await system.snmp.swap(JAMMING.ip, JAMMING.name)
    opened, cleared = jams("alert.opened")[-1], jams("alert.cleared")[-1]
    assert opened["data"]["alert_id"] == cleared["data"]["alert_id"] is not None
    assert opened["data"]["severity"] == "critical" and cleared["data"]["cleared_at"] is not None
    assert opened["data"]["context"]["ip"] == JAMMING.ip and opened["customer_id"] == device_customer(system)


def device_customer(system: DemoSystem) -> str:
    from printgate.cli.demo_system import DEMO_CUSTOMER

    return str(DEMO_CUSTOMER.id)
