"""A WebSocket's refused messages do not flood the audit log (tester wsx: a script sending
refused messages as fast as it could wrote 74,397 ``dwa.transfer_blocked`` records in 72 s).

The first ``ITEMISED_DROPS`` refusals of a WebSocket get a record each; the rest are counted by
rule in the WebSocket's ``dwa.websocket`` record, and the WebSocket still carries the page's
status messages. Real aiohttp device and client through a real proxy.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from gateway.proxy.addons.websocket_guard import ITEMISED_DROPS
from tests.proxy.conftest import ProxyHarness
from tests.proxy.test_r7_ws_memory import WsDevice, connect, technician, texts_until_done

REFUSED = 200  # binary messages: refused in either direction, whatever they hold


@pytest.fixture
async def ws_device() -> AsyncIterator[WsDevice]:
    async with WsDevice() as d:
        yield d


async def test_a_flood_of_refused_messages_writes_a_bounded_number_of_records(harness: ProxyHarness,
                                                                              ws_device: WsDevice) -> None:
    client = await technician(harness, ws_device.port)
    sid = client.route.session_id
    async with aiohttp.ClientSession() as http_session:
        sock = await connect(http_session, harness, client, "/status?tag=flood")
        assert await texts_until_done(sock) == []
        for i in range(REFUSED):
            await sock.send_bytes(b"\x89PNG" + i.to_bytes(4, "big"))
        await sock.send_str('{"refresh": true}')  # the page's own message still crosses after them
        async with asyncio.timeout(30):
            while ws_device.received.get("flood") != ['{"refresh": true}']:
                await asyncio.sleep(0.05)
        await sock.close()
    async with asyncio.timeout(30):  # the WebSocket's record is written when it ends
        while not [e for e in await harness.events(sid) if e.type == "dwa.websocket"]:
            await asyncio.sleep(0.1)
    await client.aclose()

    events = await harness.events(sid)
    itemised = [e for e in events if e.type == "dwa.transfer_blocked" and e.details.get("where") == "websocket"]
    assert len(itemised) == ITEMISED_DROPS
    (summary,) = [e for e in events if e.type == "dwa.websocket"]
    assert summary.details["dropped"] == REFUSED
    counted = summary.details["dropped_by_rule"]
    assert sum(counted.values()) == REFUSED - ITEMISED_DROPS
    assert {str(e.details["rule"]) for e in itemised} == set(counted)  # the same refusal, counted not itemised
