"""A session's tunnel endpoint is reachable by the gateway's own processes only.

The relay serves each session's tunnel on a Unix socket (mode 0600) in a
directory of mode 0700 owned by the gateway's user; the proxy connects there.
A process of another user on the gateway host (here ``nobody``, through
``setpriv``) cannot connect to it and so cannot reach the printer past the
proxy, while the technician's pages keep coming through the proxy.
"""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from lab.catalog import by_name
from printgate.cli.demo_system import DemoSystem
from tests.e2e.conftest import session_cookie

PRINTER = by_name("jetdirect_m130nw")
TECH = "user-demo-tech"
# connect to the endpoint and ask for the printer's home page; prints what came back
PROBE = """
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_UNIX) if host.startswith("/") else socket.create_connection((host, port), timeout=5)
if host.startswith("/"):
    s.settimeout(5)
    s.connect(host)
s.sendall(b"GET / HTTP/1.1\\r\\nHost: printer\\r\\nConnection: close\\r\\n\\r\\n")
data = b""
while chunk := s.recv(65536):
    data += chunk
sys.stdout.write(data.decode("latin-1"))
"""


async def _as_user(user: str, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "setpriv", f"--reuid={user}", "--regid=nogroup", "--clear-groups", "--",
        "/usr/bin/python3", "-c", PROBE, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd="/")
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    return int(proc.returncode or 0), out.decode(errors="replace")


async def test_another_user_cannot_reach_the_printer_through_the_tunnel_endpoint(system: DemoSystem) -> None:
    launch = await system.open_session_as_demo_user(PRINTER.ip)
    sid = next(s.id for s in system.cloud.broker.live_sessions_of(TECH))
    try:
        route = system.cloud.routes.get(sid)
        assert route is not None
        code, out = await _as_user("nobody", route.upstream_host, str(route.upstream_port))
        assert code != 0 and PRINTER.name not in out, out[-500:]
        assert "Permission denied" in out or "PermissionError" in out, out[-500:]

        # the endpoint is a socket only the gateway's user may use, in a directory only it may enter
        endpoint = Path(route.upstream_host)
        assert stat.S_ISSOCK(endpoint.stat().st_mode) and stat.S_IMODE(endpoint.stat().st_mode) == 0o600
        directory = endpoint.parent.stat()
        assert directory.st_uid == os.geteuid() and stat.S_IMODE(directory.st_mode) == 0o700

        # the gateway's own user (the proxy's) still gets through, and so does the technician
        code, out = await _as_user(str(os.geteuid()), route.upstream_host, str(route.upstream_port))
        assert code == 0 and PRINTER.name in out, out[-500:]
        parts = urlsplit(launch)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{parts.port}", timeout=15) as c:
            first = await c.get(f"{parts.path}?{parts.query}", headers={"Host": parts.netloc})
            page = await c.get("/", headers={"Host": parts.netloc, "Cookie": session_cookie(first)})
            assert page.status_code == 200 and PRINTER.name in page.text
    finally:
        await system.cloud.broker.close_session(sid, reason="isolation test", actor="test")  # type: ignore[arg-type]
    assert not Path(route.upstream_host).exists(), "the ended session's socket file is left behind"

