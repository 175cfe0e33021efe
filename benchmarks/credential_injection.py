"""Benchmark: what signing in with a stored credential costs (issue 19).

For each lab login kind (HTTP Basic, HTTP Digest, form login with a CSRF token), in the same run
and through the same in-process proxy (real audit log on SQLite):

- ``plain``: the admin page on a session WITHOUT injection whose client is already signed in to
  the device (it sent its own credentials / has the device's cookie): the reference;
- ``first``: the same admin page as the first admin page of a fresh session WITH injection (after
  the launch and the home page, as in a browser): the proxy meets the device's challenge or login
  redirect, signs in and answers again; ``plain_first`` is the reference for it (a fresh session
  without injection, the client signed in itself);
- ``later``: the same page on that injected session afterwards (credentials/cookies added).

The simulated printer runs in a process of its own (a device is never in the gateway's process);
proxy, audit log and client share this one.

Targets: median(first) - median(plain_first) <= 20 ms; median(later) / median(plain) ~ 1 (nothing
measurable). The 2-core machine is shared: numbers are noisy, medians over many sessions.

    .venv/bin/python benchmarks/credential_injection.py [--sessions 40] [--requests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from gateway.proxy.routes import RouteTable, SessionRoute  # noqa: E402
from gateway.proxy.server import DwaProxy  # noqa: E402
from lab.catalog import LabLogin  # noqa: E402
from lab.ews.device_login import PASSWORD, USERNAME  # noqa: E402
from printgate.domain.credentials import DeviceLogin, LoginKind  # noqa: E402
from printgate.testing.audit import ReadableAuditLog  # noqa: E402
from printgate.testing.database import migrated, sqlite_url  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "credential_injection.json"
KINDS = {
    "basic": LabLogin("basic"),
    "digest": LabLogin("digest"),
    "form_csrf": LabLogin("form", path="/userpost/login", user_field="webUsername", password_field="webPassword",
                          csrf_field="CSRFToken"),
}


_DEVICE = """
import asyncio, sys
sys.path.insert(0, {root!r})
from benchmarks.credential_injection import KINDS
from lab.ews import EwsServer

async def main():
    async with EwsServer("127.0.20.90", 0, device_name="bench", serial="B1", login=KINDS[{kind!r}]) as ews:
        print(ews.port, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


class DeviceProcess:
    """The simulated printer in a process of its own (as a device is not in the gateway's
    process): its ``host``, ``port``, ``origin`` and ``scheme`` as an ``EwsServer`` has them."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.host, self.port, self.scheme = "127.0.20.90", 0, "http"
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def __aenter__(self) -> DeviceProcess:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _DEVICE.format(root=str(ROOT), kind=self.kind),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert self._proc.stdout is not None
        self.port = int((await asyncio.wait_for(self._proc.stdout.readline(), 60)).strip())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.stdin is not None:
            self._proc.stdin.close()
            try:
                await asyncio.wait_for(self._proc.wait(), 10)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()


def _route(proxy: DwaProxy, ews: DeviceProcess, login: DeviceLogin | None, vendor: str) -> SessionRoute:
    sid = uuid.uuid4().hex[:12]
    return SessionRoute(
        session_id=sid, host=proxy.session_host(sid), upstream_host=ews.host, upstream_port=ews.port,
        device_origin=ews.origin, device_scheme=ews.scheme, pinned_fingerprint=None,
        expires_at=datetime.now(UTC) + timedelta(minutes=30), idle_timeout_s=600,
        device_label="bench", customer_name="bench", vendor=vendor, login=login,
    )


class Session:
    def __init__(self, proxy: DwaProxy, routes: RouteTable, route: SessionRoute) -> None:
        routes.add(route)
        self.routes, self.route = routes, route
        self.host = proxy.deps.public.netloc(route.host)
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{proxy.port}", timeout=20,
                                      headers={"host": self.host})
        self.cookie = ""

    async def launch(self) -> None:
        """The launch link, then the device's home page it leads to (as a browser does): the first
        admin page is never a session's first request."""
        r = await self.http.get("/__printgate/launch",
                                params={"token": self.routes.issue_launch_token(self.route.session_id)})
        self.cookie = r.headers["set-cookie"].split(";", 1)[0]
        await self.get("/")

    async def get(self, path: str, **headers: str) -> tuple[float, httpx.Response]:
        t0 = time.perf_counter()
        r = await self.http.get(path, headers={"cookie": "; ".join(filter(None, [self.cookie, headers.pop(
            "cookie", "")])), **headers})
        return (time.perf_counter() - t0) * 1000, r

    async def aclose(self) -> None:
        await self.http.aclose()
        self.routes.remove(self.route.session_id, "bench done")


async def _signed_in_plain(proxy: DwaProxy, routes: RouteTable, ews: DeviceProcess, kind: str) -> tuple[Session, dict]:
    """A session without injection whose client signed in to the device itself."""
    s = Session(proxy, routes, _route(proxy, ews, None, ""))
    await s.launch()
    headers: dict[str, str] = {}
    if kind == "basic":
        headers["authorization"] = "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    elif kind == "digest":
        _ms, challenge = await s.get("/settings")
        auth = httpx.DigestAuth(USERNAME, PASSWORD)
        flow = auth.sync_auth_flow(httpx.Request("GET", ews.origin + "/settings"))
        sent = flow.send(httpx.Response(401, headers=challenge.headers, request=next(flow)))
        headers["authorization"] = sent.headers["authorization"]
        headers["_digest"] = "1"
    else:
        page = (await s.get(KINDS[kind].path))[1].text
        token = page.split("name=CSRFToken value='", 1)[1].split("'", 1)[0]
        r = await s.http.post(KINDS[kind].path, headers={"cookie": s.cookie}, data={
            "webUsername": USERNAME, "webPassword": PASSWORD, "CSRFToken": token})
        headers["cookie"] = r.headers["set-cookie"].split(";", 1)[0]
    return s, headers


async def bench_kind(proxy: DwaProxy, routes: RouteTable, ews: DeviceProcess, kind: str, sessions: int,
                     requests: int) -> dict[str, object]:
    login = DeviceLogin(LoginKind(KINDS[kind].kind), USERNAME, PASSWORD)
    vendor = "Xerox" if kind == "form_csrf" else ""
    plain_first: list[float] = []
    first_ms: list[float] = []
    plain_ms: list[float] = []
    later_ms: list[float] = []
    for _ in range(sessions):
        # the same page as the first of a fresh session: without injection (the client signed in
        # itself), then with injection (the proxy signs in)
        plain, headers = await _signed_in_plain(proxy, routes, ews, kind)
        headers.pop("_digest", None)
        ms, r = await plain.get("/settings", **dict(headers))
        assert r.status_code == 200 and "Logged in as admin" in r.text, (kind, r.status_code)
        plain_first.append(ms)
        await plain.aclose()
        fresh = Session(proxy, routes, _route(proxy, ews, login, vendor))
        await fresh.launch()
        ms, r = await fresh.get("/settings")
        assert r.status_code == 200 and "Logged in as admin" in r.text, (kind, r.status_code, r.text[:200])
        first_ms.append(ms)
        await fresh.aclose()
    plain, headers = await _signed_in_plain(proxy, routes, ews, kind)
    digest = headers.pop("_digest", None)
    injected = Session(proxy, routes, _route(proxy, ews, login, vendor))
    await injected.launch()
    await injected.get("/settings")
    for _ in range(requests):
        if digest:  # a digest answer is bound to its URI and nonce count: a fresh one per request
            await plain.aclose()
            plain, headers = await _signed_in_plain(proxy, routes, ews, kind)
            headers.pop("_digest", None)
        ms, r = await plain.get("/settings", **dict(headers))
        assert "Logged in as admin" in r.text
        plain_ms.append(ms)
        ms, r = await injected.get("/settings")
        assert "Logged in as admin" in r.text
        later_ms.append(ms)
    await plain.aclose()
    await injected.aclose()
    direct_ms: list[float] = []
    async with httpx.AsyncClient(timeout=20) as direct:  # one device round trip, no proxy
        for _ in range(min(requests, 50)):
            t0 = time.perf_counter()
            await direct.get(ews.origin + "/bench/small")
            direct_ms.append((time.perf_counter() - t0) * 1000)
    d = statistics.median(direct_ms)
    pf, f = statistics.median(plain_first), statistics.median(first_ms)
    p, later = statistics.median(plain_ms), statistics.median(later_ms)
    return {
        "plain_first_median_ms": round(pf, 3), "first_median_ms": round(f, 3),
        "first_added_ms": round(f - pf, 3), "first_within_20ms": f - pf <= 20.0,
        "plain_later_median_ms": round(p, 3), "later_median_ms": round(later, 3),
        "later_added_ms": round(later - p, 3), "later_ratio": round(later / p, 3),
        # the device's own round trip (no proxy) in the same run: a sign-in costs 1 (Basic/Digest)
        # or 3 (form: login page, login post, the page again) of them plus the proxy's work
        "device_round_trip_median_ms": round(d, 3), "first_added_in_round_trips": round((f - pf) / d, 2),
        "sessions": sessions, "requests": requests,
    }


async def main(sessions: int, requests: int) -> dict[str, object]:
    import tempfile

    results: dict[str, object] = {"at": datetime.now(UTC).isoformat(timespec="seconds"),
                                  "what": "admin page: first through an injected sign-in and later, "
                                          "vs the same page on a session without injection, signed in"}
    with tempfile.TemporaryDirectory() as tmp:
        async with migrated(sqlite_url(Path(tmp) / "audit.db")) as db:
            audit = ReadableAuditLog(db, None)
            routes = RouteTable()

            async def nothing(*_a: object) -> None:
                return None

            proxy = DwaProxy("127.0.0.1", 0, dwa_domain="dwa.localhost", routes=routes, audit=audit,
                             on_end_request=nothing)
            async with proxy:
                for kind in KINDS:
                    async with DeviceProcess(kind) as ews:
                        results[kind] = await bench_kind(proxy, routes, ews, kind, sessions, requests)
                    print(kind, json.dumps(results[kind]), flush=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=40)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.sessions, args.requests))
