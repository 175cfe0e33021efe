"""A device's WebSocket texts are bounded per user and device, and hold no control bytes
(tester wsx F4).

Each device text could carry up to 4,080 base64 characters and nothing summed them: a 1 MB
random file reached the technician in 343 messages in 0.2 s, with no refusal. Now their
encoded-looking characters are summed per user and device (``DEVICE_ENCODED_ALLOWANCE``) and
past it a message is dropped and audited; the status texts that follow still arrive. A text
with a control byte (NUL, ESC, BEL: HTTP text bodies may hold none) is dropped either way.
Ordinary status JSON with hashes and tokens in it keeps passing.

Real aiohttp device and client through a real proxy.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.proxy.conftest import ProxyHarness
from tests.proxy.test_r7_ws_budget import blocked_rules, settle
from tests.proxy.test_r7_ws_memory import WsDevice, connect, technician, texts_until_done

ALLOWANCE = 16 * 1024  # ``websocket_guard.DEVICE_ENCODED_ALLOWANCE``


@pytest.fixture
async def ws_device() -> AsyncIterator[WsDevice]:
    async with WsDevice() as d:
        yield d


async def test_a_file_in_many_device_texts_stops_at_the_allowance(harness: ProxyHarness, ws_device: WsDevice) -> None:
    client = await technician(harness, ws_device.port)
    sid, tag = client.route.session_id, uuid.uuid4().hex[:8]
    size = 200_000  # 66 texts of 4,080 base64 characters
    async with aiohttp.ClientSession() as http_session:
        sock = await connect(http_session, harness, client, f"/file?tag={tag}&size={size}")
        got = await texts_until_done(sock)  # the status text after the file still arrives
        sent = -(-size // 3060)
        carried = sum(len(t) for t in got)
        assert carried <= ALLOWANCE, f"{len(got)} of {sent} texts carried {carried} base64 characters"
        # a second WebSocket of the same user and device starts from the same tally
        again = await connect(http_session, harness, client, f"/file?tag={uuid.uuid4().hex[:8]}&size=30600")
        assert await texts_until_done(again) == []
        await again.close()
        await sock.close()
    rules = await blocked_rules(harness, sid, "websocket.session_encoded_from_device", sent - len(got) + 10)
    assert rules.count("websocket.session_encoded_from_device") == sent - len(got) + 10, rules  # and the second's
    await client.aclose()


async def test_control_bytes_are_dropped_and_status_json_passes(harness: ProxyHarness, ws_device: WsDevice) -> None:
    client = await technician(harness, ws_device.port)
    sid, tag = client.route.session_id, uuid.uuid4().hex[:8]
    status = [json.dumps({"seq": i, "toner": 80 - i % 7, "job": hashlib.sha256(str(i).encode()).hexdigest(),
                          "token": uuid.uuid4().hex, "etag": base64.b64encode(hashlib.sha1(str(i).encode()).digest()).decode(),
                          "note": "Tray 2\tA4\r\nready"}) for i in range(300)]
    status.append("Tray 2:\tA4\r\nready\n\x0c")  # raw tab, line breaks and form feed are text
    controls = ['{"s": "a\x00b"}', "\x1b[2Jstatus", "status\x07", "\x7fdel"]
    ws_device.texts_to_send = [*controls, *status]
    async with aiohttp.ClientSession() as http_session:
        sock = await connect(http_session, harness, client, f"/texts?tag={tag}")
        got = await texts_until_done(sock)
        assert got == status  # 300 status texts with hashes, tokens, tabs and line breaks: all of them
        await sock.send_str("status \x00\x01\x02 from the page")
        await sock.send_str('{"refresh": true}')
        reached = await settle(ws_device, tag, sock)
        assert reached == ['{"refresh": true}']
        await sock.close()
    rules = await blocked_rules(harness, sid, "websocket.control_bytes_from_browser", 1)
    rules = await blocked_rules(harness, sid, "websocket.control_bytes_from_device", len(controls))
    assert rules.count("websocket.control_bytes_from_device") == len(controls), rules
    assert rules.count("websocket.control_bytes_from_browser") == 1, rules
    assert not [r for r in rules if "encoded" in r], rules
    await client.aclose()
