"""The real CUPS web interface (Debian cupsd on a loopback port) browsed through the proxy.

Pages work; PPD (printer driver) upload and print-job submission are blocked and
never reach cupsd. cupsd only accepts ``Host: 127.0.0.1`` from loopback, so this
also proves the proxy rewrites Host towards the device origin.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab.ports import free_tcp_port
from tests.proxy.conftest import SessionClient

pytestmark = pytest.mark.root


@dataclass
class Cups:
    port: int
    root: Path
    socket: Path

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def admin(self, *args: str) -> str:
        env = dict(os.environ, CUPS_SERVER=str(self.socket))
        out = subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=30, check=False)
        return out.stdout + out.stderr


def _write_conf(root: Path, port: int) -> tuple[Path, Path]:
    for sub in ("etc", "spool/tmp", "cache", "state", "log", "run"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    if Path("/etc/cups").is_dir():
        shutil.copytree("/etc/cups", root / "etc", dirs_exist_ok=True, ignore=shutil.ignore_patterns("ssl", "*.O"))
    files = root / "etc" / "cups-files.conf"
    files.write_text(
        "SystemGroup root lpadmin\n"
        f"ServerRoot {root}/etc\nRequestRoot {root}/spool\nTempDir {root}/spool/tmp\n"
        f"CacheDir {root}/cache\nStateDir {root}/state\nAccessLog {root}/log/access_log\n"
        f"ErrorLog {root}/log/error_log\nPageLog {root}/log/page_log\nFileDevice Yes\n"
        f"Printcap {root}/printcap\n"
    )
    conf = root / "etc" / "cupsd.conf"
    conf.write_text(
        f"LogLevel info\nListen 127.0.0.1:{port}\nListen {root}/run/cups.sock\nBrowsing No\n"
        "WebInterface Yes\nDefaultAuthType Basic\n"
        "<Location />\n  Order allow,deny\n  Allow from 127.0.0.1\n</Location>\n"
        "<Location /admin>\n  Order allow,deny\n  Allow from 127.0.0.1\n</Location>\n"
        "<Policy default>\n  <Limit All>\n    Order deny,allow\n  </Limit>\n</Policy>\n"
    )
    return conf, files


@pytest.fixture(scope="module")
def cups() -> Iterator[Cups]:
    if shutil.which("cupsd") is None:
        if os.environ.get("CI"):
            pytest.fail("cupsd missing: scripts/system-deps.sh installs cups")
        pytest.skip("cupsd not installed")
    # not under pytest's 0700 tmp dir: cupsd's CGIs run as user lp and must reach the socket
    root = Path(tempfile.mkdtemp(prefix="printgate-cups-"))
    root.chmod(0o755)
    port = free_tcp_port()
    conf, files = _write_conf(root, port)
    proc = subprocess.Popen(["cupsd", "-f", "-c", str(conf), "-s", str(files)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        import socket
        import time

        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"cupsd did not listen: {(root / 'log' / 'error_log').read_text(errors='replace')}")
        c = Cups(port, root, root / "run" / "cups.sock")
        c.admin("lpadmin", "-p", "testq", "-E", "-v", "file:///dev/null", "-m", "raw")
        yield c
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class CupsDevice:
    """Adapter so the harness can open a session to cupsd like to a lab EWS."""

    host: str
    port: int
    origin: str
    scheme: str = "http"
    cert_fingerprint: str | None = None

    class state:
        device_name = "CUPS 2.4"


@pytest.fixture
async def cups_client(cups: Cups, harness) -> AsyncIterator[SessionClient]:
    dev = CupsDevice("127.0.0.1", cups.port, cups.origin)
    client = SessionClient(harness, harness.open_session(dev))  # type: ignore[arg-type]
    await client.launch()
    yield client
    await client.aclose()


def jobs(cups: Cups) -> str:
    return cups.admin("lpstat", "-W", "all", "-o")


async def test_cups_pages_work_through_proxy(cups, cups_client):
    home = await cups_client.request("GET", "/")
    assert home.status_code == 200 and "CUPS" in home.text
    printers = await cups_client.request("GET", "/printers/")
    assert printers.status_code == 200 and "testq" in printers.text, printers.text[-1500:]
    page = await cups_client.request("GET", "/printers/testq")
    assert page.status_code == 200 and "testq" in page.text
    css = await cups_client.request("GET", "/cups.css")
    assert css.status_code == 200
    assert f"127.0.0.1:{cups.port}" not in home.text + printers.text + page.text


async def test_cups_ppd_upload_is_blocked(cups, cups_client, harness):
    ppd = b'*PPD-Adobe: "4.3"\n*FormatVersion: "4.3"\n*ModelName: "Evil"\n'
    r = await cups_client.request(
        "POST", "/admin/",
        data={"org.cups.sid": "x", "OP": "add-printer", "PRINTER_NAME": "evil", "DEVICE_URI": "file:///dev/null"},
        files={"PPD_FILE": ("evil.ppd", ppd, "application/vnd.cups-ppd")},
    )
    assert r.status_code == 403 and "Blocked by policy" in r.text
    assert "evil" not in cups.admin("lpstat", "-p")
    events = await harness.events(cups_client.route.session_id)
    assert any(e.type == "dwa.transfer_blocked" and e.details["path"] == "/admin/" for e in events)


async def test_cups_test_page_and_ipp_print_job_are_blocked(cups, cups_client, harness):
    before = jobs(cups)
    r = await cups_client.request("POST", "/printers/testq", data={"org.cups.sid": "x", "OP": "print-test-page"})
    assert r.status_code == 403
    ipp_job = (
        b"\x02\x00\x00\x02\x00\x00\x00\x01\x01"
        b"G\x00\x12attributes-charset\x00\x05utf-8"
        b"H\x00\x1battributes-natural-language\x00\x05en-us"
        b"E\x00\x0bprinter-uri\x00\x1fipp://localhost/printers/testq\x03%!PS-Adobe-3.0\nshowpage\n"
    )
    r = await cups_client.request("POST", "/printers/testq", content=ipp_job, headers={"content-type": "application/ipp"})
    assert r.status_code == 403
    await asyncio.sleep(0.3)
    assert jobs(cups) == before
    events = await harness.events(cups_client.route.session_id)
    rules = [e.details.get("rule") for e in events if e.type == "dwa.transfer_blocked"]
    assert len(rules) >= 2


async def test_an_upgrade_to_tls_never_reaches_cupsd(cups, cups_client, harness):
    """RFC 2817: cupsd switches a plain connection to TLS when asked (``Upgrade: TLS/1.2``) and
    it has a place for its credentials, as a stock install does. Through the proxy that switch
    became a TLS tunnel no check could see, over which a print job and cupsd.conf crossed (tester
    xfer); the proxy now passes the request on without its upgrade, and cupsd answers it plainly."""
    (cups.root / "etc" / "ssl").mkdir(mode=0o700, exist_ok=True)
    reader, writer = await asyncio.open_connection("127.0.0.1", harness.proxy.port)
    try:
        writer.write(f"OPTIONS / HTTP/1.1\r\nHost: {cups_client.netloc}\r\nCookie: {cups_client.cookie}\r\n"
                     "Connection: Upgrade\r\nUpgrade: TLS/1.2, HTTP/1.1\r\n\r\n".encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    finally:
        writer.close()
    status = head.split(b"\r\n")[0]
    assert status == b"HTTP/1.1 200 OK", head
    assert b"upgrade:" not in head.lower()


@pytest.mark.browser
async def test_cups_browsed_in_chromium(cups, harness, page):
    dev = CupsDevice("127.0.0.1", cups.port, cups.origin)
    route = harness.open_session(dev)  # type: ignore[arg-type]
    origin = harness.proxy.session_origin(route.session_id)
    await page.goto(harness.launch_url(route))
    await page.wait_for_url(origin + "/")
    assert "CUPS" in await page.title()
    await page.goto(origin + "/printers/")
    await page.wait_for_selector("text=testq")
    links = await page.eval_on_selector_all("a", "els => els.map(e => e.getAttribute('href'))")
    assert "/printers/testq" in links, (links, (await page.content())[:3000])
    await page.click("a[href='/printers/testq']")
    await page.wait_for_url(origin + "/printers/testq")
    assert await page.locator("#__printgate_bar").count() == 1
