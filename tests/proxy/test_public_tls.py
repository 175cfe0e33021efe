"""Session hosts over HTTPS from the gateway's own CA, and old TLS towards the device only.

The proxy runs as a worker process (mitmproxy keeps per-process state, and the
shared in-process harness speaks plain http). Chromium trusts the CA the way
the demo tells a user to: ``certutil`` into an NSS database under its HOME.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509

from gateway.proxy.public_tls import ensure_own_ca, trust_instructions
from gateway.proxy.routes import RouteTable, SessionRoute
from gateway.proxy.workers import ProxyWorkerPool
from lab.ews import EwsLab, EwsServer
from printgate.store.db import Database, migrate
from tests.proxy.conftest import CHROMIUM_ARGS, DWA_DOMAIN

HTTP_PRINTER = "jetdirect_m130nw"
LEGACY_IP = "127.0.20.15"  # the printer's own address; a second, TLS-1.0-only web server on another port


@dataclass
class TlsPool:
    pool: ProxyWorkerPool
    routes: RouteTable
    ca_cert: Path
    ends: list[str]

    def open_session(self, ews: EwsServer) -> SessionRoute:
        sid = uuid.uuid4().hex[:12]
        route = SessionRoute(
            sid, self.pool.session_host(sid), ews.host, ews.port, ews.origin, ews.scheme,
            ews.cert_fingerprint, datetime.now(UTC) + timedelta(minutes=30), 600,
            ews.state.device_name, "ACME Print Customer",
        )
        self.routes.add(route)
        return route

    def launch_url(self, route: SessionRoute) -> str:
        return self.pool.launch_url(route.session_id, self.routes.issue_launch_token(route.session_id))

    def client(self, route: SessionRoute, context: ssl.SSLContext) -> httpx.AsyncClient:
        """Connects to 127.0.0.1 but names the session host in SNI and Host (Python does not resolve *.localhost)."""
        return httpx.AsyncClient(
            base_url=f"https://127.0.0.1:{self.pool.port}", verify=context, timeout=15,
            headers={"host": self.pool.public.netloc(route.host)},
        )


@pytest.fixture(scope="module")
async def tls_pool(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TlsPool]:
    base = tmp_path_factory.mktemp("public-tls")
    url = f"sqlite+aiosqlite:///{base / 'audit.db'}"
    await migrate(url)
    db = Database(url)
    ca_cert = ensure_own_ca(base / "dwa-ca")
    routes = RouteTable()
    ends: list[str] = []

    async def on_end(sid: str) -> None:
        ends.append(sid)

    pool = ProxyWorkerPool(
        "127.0.0.1", 0, workers=1, database_url=url, dwa_domain=DWA_DOMAIN, routes=routes,
        on_end_request=on_end, public_scheme="https", confdir=base / "dwa-ca",
    )
    async with pool:
        yield TlsPool(pool, routes, ca_cert, ends)
    await db.aclose()


@pytest.fixture(scope="module")
async def legacy_ews() -> AsyncIterator[EwsServer]:
    async with EwsServer(LEGACY_IP, 0, device_name="laserjet_2015_tls10", serial="OLD1", legacy_tls=True) as ews:
        yield ews


@pytest.fixture
def ews(ews_lab: EwsLab) -> EwsServer:
    return ews_lab[HTTP_PRINTER]


def trusting(ca_cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_cert))


async def launched_cookie(tls: TlsPool, client: httpx.AsyncClient, route: SessionRoute) -> str:
    token = tls.routes.issue_launch_token(route.session_id)
    r = await client.get("/__printgate/launch", params={"token": token}, extensions={"sni_hostname": route.host})
    assert r.status_code == 200, r.text
    return r.headers["set-cookie"]


# --- the certificate ---------------------------------------------------------------
async def test_session_host_certificate_chains_to_the_gateway_ca_and_names_the_host(tls_pool, ews):
    route = tls_pool.open_session(ews)
    ctx = trusting(tls_pool.ca_cert)
    _reader, writer = await asyncio.open_connection("127.0.0.1", tls_pool.pool.port, ssl=ctx,
                                                    server_hostname=route.host)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
    leaf = x509.load_der_x509_certificate(der)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert route.host in names
    ca = x509.load_pem_x509_certificate(tls_pool.ca_cert.read_bytes())
    assert leaf.issuer == ca.subject and "printgate" in ca.subject.rfc4514_string()


async def test_the_system_trust_store_does_not_trust_the_session_ca(tls_pool, ews):
    route = tls_pool.open_session(ews)
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.open_connection("127.0.0.1", tls_pool.pool.port, ssl=ssl.create_default_context(),
                                      server_hostname=route.host)


async def test_browser_side_refuses_tls_older_than_1_2(tls_pool, ews):
    route = tls_pool.open_session(ews)
    old = trusting(tls_pool.ca_cert)
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await asyncio.open_connection("127.0.0.1", tls_pool.pool.port, ssl=old, server_hostname=route.host)


async def test_cookie_is_host_prefixed_and_secure_over_https(tls_pool, ews):
    route = tls_pool.open_session(ews)
    async with tls_pool.client(route, trusting(tls_pool.ca_cert)) as client:
        set_cookie = await launched_cookie(tls_pool, client, route)
        assert set_cookie.startswith("__Host-printgate_dwa=")
        attrs = {a.strip().lower() for a in set_cookie.split(";")[1:]}
        assert {"secure", "httponly", "samesite=strict", "path=/"} <= attrs
        assert not any(a.startswith("domain=") for a in attrs)
        home = await client.get("/", headers={"cookie": set_cookie.split(";", 1)[0]},
                                extensions={"sni_hostname": route.host})
    assert home.status_code == 200 and ews.state.device_name in home.text
    assert home.headers["strict-transport-security"] == "max-age=31536000"
    origin = tls_pool.pool.session_origin(route.session_id)
    assert origin.startswith("https://") and origin + "/style.css" in home.text
    assert ews.host not in home.text


# --- old TLS towards the device only -----------------------------------------------
async def test_printer_speaking_only_tls_1_0_works_through_the_proxy(tls_pool, legacy_ews):
    with pytest.raises((ssl.SSLError, ConnectionError)):  # a modern client cannot talk to it directly
        modern = ssl.create_default_context()
        modern.check_hostname, modern.verify_mode = False, ssl.CERT_NONE
        await asyncio.open_connection(legacy_ews.host, legacy_ews.port, ssl=modern)
    route = tls_pool.open_session(legacy_ews)
    async with tls_pool.client(route, trusting(tls_pool.ca_cert)) as client:
        cookie = (await launched_cookie(tls_pool, client, route)).split(";", 1)[0]
        home = await client.get("/", headers={"cookie": cookie}, extensions={"sni_hostname": route.host})
    assert home.status_code == 200 and "laserjet_2015_tls10" in home.text


# --- Chromium, trusting the CA as the demo tells a user ------------------------------
def nss_home_trusting(home: Path, ca_cert: Path) -> Path:
    """An NSS database under ``home`` with the CA trusted, made with the command the demo prints."""
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run(["certutil", "-d", f"sql:{nssdb}", "-N", "--empty-password"], check=True)
    shown = next(line for line in trust_instructions(ca_cert) if line.startswith("Chromium"))
    command = shown.split(": ", 1)[1].replace("$HOME", str(home)).split()
    assert command[0] == "certutil"
    subprocess.run(command, check=True)
    return home


@pytest.fixture(scope="module")
async def trusting_browser(tls_pool: TlsPool, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    home = nss_home_trusting(tmp_path_factory.mktemp("chromium-home"), tls_pool.ca_cert)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS,
                                           env={"HOME": str(home)})
        yield browser
        await browser.close()


@pytest.mark.browser
async def test_chromium_that_trusts_the_ca_works_in_the_session_over_https(trusting_browser, tls_pool, ews):
    route = tls_pool.open_session(ews)
    origin = tls_pool.pool.session_origin(route.session_id)
    context = await trusting_browser.new_context()  # certificate errors are not ignored
    try:
        page = await context.new_page()
        await page.goto(tls_pool.launch_url(route))
        await page.wait_for_url(re.compile(r"^https://.*/$"))
        await page.wait_for_selector("#model")
        cookies = {c["name"]: c for c in await context.cookies(origin)}
        jar = cookies["__Host-printgate_dwa"]
        assert jar["secure"] and jar["httpOnly"] and jar["sameSite"] == "Strict"
        await page.goto(origin + "/status")  # the status page's WebSocket goes over wss
        await page.wait_for_function("+document.getElementById('updates').textContent >= 3", timeout=10000)
        assert ews.host not in await page.content()
        await page.goto(origin + "/")
        await page.click("#__printgate_end")
        await page.wait_for_selector("text=Remote session ended")
        assert route.session_id in tls_pool.ends
    finally:
        await context.close()


@pytest.mark.browser
async def test_chromium_that_does_not_trust_the_ca_refuses_the_session_host(browser, tls_pool, ews):
    route = tls_pool.open_session(ews)
    context = await browser.new_context()
    try:
        page = await context.new_page()
        with pytest.raises(Exception, match="ERR_CERT_AUTHORITY_INVALID"):
            await page.goto(tls_pool.launch_url(route))
    finally:
        await context.close()
