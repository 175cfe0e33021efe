"""Security headers towards the technician: CSP to the session origin only, no caching, no framing."""

from __future__ import annotations

from mitmproxy import http

from gateway.proxy.decision import route_of
from gateway.proxy.deps import PublicAddress

REMOVE = (
    "content-security-policy", "content-security-policy-report-only", "strict-transport-security",
    "alt-svc", "public-key-pins", "expect-ct", "x-frame-options", "referrer-policy",
    "x-content-type-options", "cache-control", "expires", "pragma", "access-control-allow-origin",
    "access-control-allow-credentials",
)


def csp_for(ws_origins: str) -> str:
    return (
        "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
        f"connect-src 'self' {ws_origins}; frame-src 'self'; frame-ancestors 'self'; "
        "form-action 'self'; base-uri 'self'; object-src 'none'"
    ).strip()


class SecurityHeaders:
    def __init__(self, public: PublicAddress) -> None:
        self._public = public

    def response(self, flow: http.HTTPFlow) -> None:
        resp = flow.response
        if resp is None:
            return
        for name in REMOVE:
            if name in resp.headers:
                del resp.headers[name]
        route = route_of(flow)
        ws = ""
        if route is not None:
            netloc = self._public.netloc(route.host)
            ws = f"ws://{netloc} wss://{netloc}"
        resp.headers["content-security-policy"] = csp_for(ws)
        resp.headers["cache-control"] = "no-store"
        resp.headers["pragma"] = "no-cache"
        resp.headers["x-frame-options"] = "SAMEORIGIN"
        resp.headers["referrer-policy"] = "same-origin"
        resp.headers["x-content-type-options"] = "nosniff"
