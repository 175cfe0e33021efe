"""The simulated printer EWS served directly (no proxy): the patterns the proxy must handle are there."""

from __future__ import annotations

import hashlib
import ssl

import httpx
import pytest

from lab.catalog import PRINTERS
from lab.ews import EwsLab, EwsServer
from lab.ews.app import PASSWORD, USERNAME


@pytest.fixture(scope="module")
async def lab():
    async with EwsLab() as running:
        yield running


async def test_lab_starts_one_ews_per_catalogue_printer_at_its_own_address(lab):
    assert set(lab.servers) == {d.name for d in PRINTERS}
    for device in PRINTERS:
        server = lab[device.name]
        assert server.host == device.ip and server.https == device.https
        async with httpx.AsyncClient(verify=False) as c:
            r = await c.get(server.origin + "/")
        assert r.status_code == 200 and device.name in r.text


async def test_pages_use_absolute_links_to_the_device_address(lab):
    server = lab["jetdirect_m130nw"]
    async with httpx.AsyncClient() as c:
        home = (await c.get(server.origin + "/")).text
        styled = (await c.get(server.origin + "/styled")).text
        css = (await c.get(server.origin + "/style.css")).text
        status = (await c.get(server.origin + "/status")).text
    assert f"href='{server.origin}/login'" in home
    assert f"srcset='{server.origin}/logo.png 1x" in styled
    assert f"url={server.origin}/status" in styled  # meta refresh
    assert f"//{server.host}:{server.port}/extra.css" in styled  # protocol-relative
    assert f"url('{server.origin}/logo.png')" in css
    assert f"ws://{server.host}:{server.port}/ws/status" in status


async def test_login_sets_cookie_and_redirects_absolutely(lab):
    server = lab["brother_hl5370dw"]
    async with httpx.AsyncClient() as c:
        r = await c.post(server.origin + "/login", data={"username": USERNAME, "password": PASSWORD})
        assert r.status_code == 302 and r.headers["location"] == server.origin + "/settings"
        assert "ewssid" in r.cookies
        page = await c.get(server.origin + "/settings")
        assert "Logged in as admin" in page.text
        wrong = await c.post(server.origin + "/login", data={"username": USERNAME, "password": "nope"})
        assert "Wrong user name" in wrong.text


async def test_transfer_endpoints_exist_and_would_leak_without_the_proxy(lab):
    server = lab["ricoh_mpc3002"]
    async with httpx.AsyncClient() as c:
        export = await c.get(server.origin + "/addressbook/entries.csv")
        assert export.headers["content-disposition"].startswith("attachment")
        zipped = await c.get(server.origin + "/settings/archive.html")
        assert zipped.headers["content-type"].startswith("text/html") and zipped.content.startswith(b"PK\x03\x04")
        before = len(server.state.received)
        await c.post(server.origin + "/firmware/upload", files={"f": ("fw.bin", b"\x00" * 100)})
        assert len(server.state.received) == before + 1


async def test_https_ews_serves_self_signed_cert_with_advertised_fingerprint(lab):
    server = lab["xerox"]
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    import asyncio

    _reader, writer = await asyncio.open_connection(server.host, server.port, ssl=ctx)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    await writer.wait_closed()
    assert hashlib.sha256(der).hexdigest() == server.cert_fingerprint


async def test_two_https_servers_have_different_certificates():
    a = EwsServer("127.0.20.21", 0, device_name="a", serial="1", https=True)
    b = EwsServer("127.0.20.21", 0, device_name="b", serial="2", https=True)
    assert a.cert_fingerprint != b.cert_fingerprint
    async with a, b:
        assert a.port != b.port
