"""Browser messages over a WebSocket count like HTTP uploads (tester wsx F2, F3).

F2: a browser's text messages were never added to the per-user-and-device tally of encoded
characters HTTP uploads count against (2 KiB): 150 KB of a random file crossed as 794 messages
of 252 base64 characters, each under the per-message threshold. Now they are, and the tally is
the same one: past it an HTTP upload of encoded data is refused too.

F3: an empty text message cost no budget, so it was never refused, not even with the session
budget spent: the number of empty messages between two others carried 14 bits per budget byte,
and new WebSockets carried a byte each past the budget. Now every message costs its length
plus ``MESSAGE_COST`` (and a new WebSocket ``MESSAGE_COST``): the budget spent is at least the
bytes and messages the device got, and once it is spent every further message and every new
WebSocket of the session is refused, each with an audit record, while pages keep loading.

Real aiohttp device and client through a real proxy (a small session budget for F3).
"""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest

from gateway.proxy import encoded
from printgate.testing.audit import ReadableAuditLog
from tests.proxy.budget_harness import budget_of, budget_proxy
from tests.proxy.conftest import ProxyHarness
from tests.proxy.test_r7_ws_memory import WsDevice, connect, technician, texts_until_done

MESSAGE_COST = 1  # what a message costs on top of its bytes (``websocket_guard.MESSAGE_COST``)


@pytest.fixture
async def ws_device() -> AsyncIterator[WsDevice]:
    async with WsDevice() as d:
        yield d


async def blocked_rules(harness: ProxyHarness, session_id: str, rule: str = "", at_least: int = 0) -> list[str]:
    """The rules of the session's refusals, once ``at_least`` of them are ``rule`` (the audit store
    writes in batches: a record may land a moment after the refusal): one per refusal record, and
    one per refusal an ended WebSocket's record counts (past its first ``ITEMISED_DROPS``)."""
    async with asyncio.timeout(15):
        while True:
            rules = []
            for e in await harness.events(session_id):
                if e.type == "dwa.transfer_blocked":
                    rules.append(str(e.details.get("rule")))
                elif e.type == "dwa.websocket":
                    for counted, n in dict(e.details.get("dropped_by_rule") or {}).items():
                        rules += [str(counted)] * int(n)
            if rules.count(rule) >= at_least:
                return rules
            await asyncio.sleep(0.1)


async def settle(device: WsDevice, tag: str, sock: aiohttp.ClientWebSocketResponse) -> list[str]:
    """Everything the device got on ``tag`` once a marker message sent last has arrived."""
    marker = f'{{"marker": "{uuid.uuid4().hex[:6]}"}}'
    await sock.send_str(marker)
    async with asyncio.timeout(30):
        while marker not in device.received.get(tag, []):
            await asyncio.sleep(0.05)
    return [t for t in device.received[tag] if t != marker]


async def test_base64_in_many_small_messages_counts_against_the_upload_tally(
    harness: ProxyHarness, ws_device: WsDevice,
) -> None:
    client = await technician(harness, ws_device.port)
    sid, tag = client.route.session_id, uuid.uuid4().hex[:8]
    file = os.urandom(30_000)
    text = base64.b64encode(file).decode()
    pieces = [text[i:i + 252] for i in range(0, len(text), 252)]
    async with aiohttp.ClientSession() as http_session:
        sock = await connect(http_session, harness, client, f"/status?tag={tag}")
        await texts_until_done(sock)
        for piece in pieces:
            await sock.send_str('{"v":"' + piece + '"}')
        got = await settle(ws_device, tag, sock)
        # what the tally counts (``encoded.encoded_chars``): about 1 in 500 random pieces this short
        # looks word-like to it and is not counted (the same for HTTP uploads)
        counted = [t for t in got if encoded.encoded_chars(t.encode())]
        assert sum(len(t) - 8 for t in counted) <= 2048, f"{len(counted)} counted messages reached the device"
        uncounted = [p for p in pieces if not encoded.encoded_chars(('{"v":"' + p + '"}').encode())]
        assert len(got) <= len(counted) + len(uncounted) and len(got) <= 2048 // 252 + len(uncounted), len(got)
        await sock.send_str('{"refresh": true}')  # status messages still go through
        assert '{"refresh": true}' in await settle(ws_device, tag, sock)
        await sock.close()
    rules = await blocked_rules(harness, sid, "websocket.session_encoded_from_browser", len(pieces) - len(got))
    assert rules.count("websocket.session_encoded_from_browser") == len(pieces) - len(got)
    # the same tally: an HTTP upload of encoded data is refused now too
    refused = await client.request("POST", "/status", content=('{"v":"' + text[:200] + '"}').encode(),
                                   headers={"content-type": "application/json"})
    assert refused.status_code == 403, refused.status_code
    assert "upload.session_encoded" in await blocked_rules(harness, sid, "upload.session_encoded", 1)
    await client.aclose()


@pytest.fixture
async def small_budget(audit_db: ReadableAuditLog) -> AsyncIterator[ProxyHarness]:
    async with budget_proxy(audit_db, session_budget=4096) as h:
        yield h


async def test_empty_messages_cost_budget_and_past_it_every_message_and_websocket_is_refused(
    small_budget: ProxyHarness, ws_device: WsDevice,
) -> None:
    h = small_budget
    client = await technician(h, ws_device.port)
    sid, tag = client.route.session_id, uuid.uuid4().hex[:8]
    ledger = budget_of(h).ledger_of(client.route)
    assert (await client.request("GET", "/")).status_code == 200  # a page opened before the budget is spent
    async with aiohttp.ClientSession() as http_session:
        sock = await connect(http_session, h, client, f"/status?tag={tag}")
        await texts_until_done(sock)
        before = ledger.used
        for _ in range(500):
            await sock.send_str("")
        got = await settle(ws_device, tag, sock)
        assert got.count("") == 500
        charged = ledger.used - before
        assert charged >= 500 * MESSAGE_COST + 1, f"500 empty messages and a marker cost {charged} budget bytes"
        # spend the rest of the budget: every message the device gets costs at least its bytes plus one
        for _ in range(10):
            await sock.send_str("status " * 20)
        got = await settle(ws_device, tag, sock)
        assert ledger.used - before >= sum(len(t.encode()) + MESSAGE_COST for t in got) + 10
        await sock.send_str(("status " * 600)[:4096 - ledger.used - MESSAGE_COST])  # exactly what is left
        async with asyncio.timeout(10):
            while ledger.used < 4096:
                await asyncio.sleep(0.05)
        passed = len(ws_device.received[tag])
        refused_before = (await blocked_rules(h, sid)).count("budget.session")
        for _ in range(50):  # past the budget: nothing more, not even empty messages
            await sock.send_str("")
        await sock.send_str("x")
        await asyncio.sleep(1.0)
        assert len(ws_device.received[tag]) == passed, "messages reached the device past the spent budget"
        await sock.close()
        rules = await blocked_rules(h, sid, "budget.session", refused_before + 51)
        assert rules.count("budget.session") - refused_before >= 51, rules
        # a new WebSocket of the session is refused (and audited), the same address and headers as
        # the first (a request the budget lets repeat): the device sees no handshake
        opened = ws_device.opened
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await connect(http_session, h, client, f"/status?tag={tag}")
        assert refused.value.status == 403
        assert ws_device.opened == opened
    async with asyncio.timeout(15):  # the refused handshake's own record
        while not [e for e in await h.events(sid) if e.type == "dwa.transfer_blocked"
                   and e.details.get("transfer_type") == "websocket upgrade"
                   and e.details.get("rule") == "budget.session"]:
            await asyncio.sleep(0.1)
    page = await client.request("GET", "/")  # the session keeps serving the pages it opened
    assert page.status_code == 200 and "Device home ok" in page.text
    await client.aclose()
