"""Hand-made flows for the addon unit tests (mitmproxy's own ``tflow`` helpers underneath)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mitmproxy import http
from mitmproxy.test import tflow, tutils

from gateway.proxy.decision import DECISION_KEY, ROUTE_KEY, FlowDecision
from gateway.proxy.deps import ProxyDeps
from gateway.proxy.routes import RouteTable, SessionRoute
from printgate.testing.audit import RecordingAuditSink

HOST = "s-abc.dwa.localhost"


def route(**changes: object) -> SessionRoute:
    values: dict[str, object] = dict(
        session_id="abc", host=HOST, upstream_host="127.0.0.1", upstream_port=40001,
        device_origin="http://127.0.20.15", device_scheme="http", pinned_fingerprint=None,
        expires_at=datetime.now(UTC) + timedelta(minutes=30), idle_timeout_s=600,
        device_label="Front desk", customer_name="ACME",
    )
    values.update(changes)
    return SessionRoute(**values)  # type: ignore[arg-type]


def flow(method: str = "GET", path: str = "/", *, headers: dict[str, str] | None = None,
         content: bytes = b"", response: http.Response | None = None,
         with_route: SessionRoute | None = None) -> http.HTTPFlow:
    req = tutils.treq(method=method.encode(), path=path.encode(), host=HOST, port=80,
                      authority=b"", content=content)
    req.headers.clear()
    req.headers["host"] = HOST
    for name, value in (headers or {}).items():
        req.headers[name] = value
    f = tflow.tflow(req=req, resp=response if response is not None else False)
    if with_route is not None:
        f.metadata[ROUTE_KEY] = with_route
    return f


def response(status: int = 200, content: bytes = b"<html></html>",
             headers: dict[str, str] | None = None) -> http.Response:
    resp = tutils.tresp(status_code=status, content=content)
    resp.headers.clear()
    for name, value in (headers or {"content-type": "text/html"}).items():
        resp.headers[name] = value
    return resp


def decision(f: http.HTTPFlow) -> FlowDecision | None:
    value = f.metadata.get(DECISION_KEY)
    return value if isinstance(value, FlowDecision) else None


def deps(**changes: object) -> ProxyDeps:
    """Proxy dependencies with an empty route table, a recording audit sink and no callbacks."""

    async def no_end(session_id: str) -> None:
        return None

    values: dict[str, object] = dict(routes=RouteTable(), audit=RecordingAuditSink(), dwa_domain="dwa.localhost",
                                     on_end_request=no_end, csrf_key=b"k" * 32)
    values.update(changes)
    return ProxyDeps(**values)  # type: ignore[arg-type]
