"""Security headers towards the technician: CSP to the session origin only, no caching, no framing;
HSTS when session hosts are served over TLS.

The CSP also carries a ``sandbox`` that keeps what EWS pages need (scripts, forms, same
origin, dialogs, popups, frames navigating the top page) but not ``allow-downloads``: the
browser itself refuses every download a page starts, a blob link included. A
Permissions-Policy turns off the device features an EWS never needs (camera, clipboard
reading, USB, ...), and a device's ``Service-Worker-Allowed`` never reaches the browser."""

from __future__ import annotations

from mitmproxy import http

from gateway.proxy.decision import route_of
from gateway.proxy.deps import PublicAddress

REMOVE = (
    "content-security-policy", "content-security-policy-report-only", "strict-transport-security",
    "alt-svc", "public-key-pins", "expect-ct", "x-frame-options", "referrer-policy",
    "x-content-type-options", "cache-control", "expires", "pragma", "access-control-allow-origin",
    "access-control-allow-credentials", "service-worker-allowed", "permissions-policy", "feature-policy",
    "content-disposition-policy", "x-download-options",
)

# what EWS pages need; deliberately NOT allow-downloads (nor allow-popups-to-escape-sandbox,
# so popups stay sandboxed too)
SANDBOX = (
    "sandbox allow-scripts allow-forms allow-same-origin allow-modals allow-popups "
    "allow-top-navigation allow-pointer-lock"
)
PERMISSIONS_POLICY = (
    "accelerometer=(), ambient-light-sensor=(), autoplay=(), bluetooth=(), camera=(), "
    "clipboard-read=(), clipboard-write=(), display-capture=(), encrypted-media=(), "
    "geolocation=(), gyroscope=(), hid=(), identity-credentials-get=(), idle-detection=(), "
    "local-fonts=(), magnetometer=(), microphone=(), midi=(), otp-credentials=(), payment=(), "
    "picture-in-picture=(), publickey-credentials-create=(), publickey-credentials-get=(), "
    "screen-wake-lock=(), serial=(), storage-access=(), usb=(), web-share=(), "
    "window-management=(), xr-spatial-tracking=()"
)


def csp_for(ws_origins: str) -> str:
    return (
        "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
        f"connect-src 'self' {ws_origins}; frame-src 'self'; frame-ancestors 'self'; "
        f"form-action 'self'; base-uri 'self'; object-src 'none'; {SANDBOX}"
    ).strip()


_REMOVE_BYTES = frozenset(name.encode() for name in REMOVE)
_FIXED: tuple[tuple[bytes, bytes], ...] = (
    (b"cache-control", b"no-store"),
    (b"pragma", b"no-cache"),
    (b"x-frame-options", b"SAMEORIGIN"),
    (b"referrer-policy", b"same-origin"),
    (b"x-content-type-options", b"nosniff"),
    (b"permissions-policy", PERMISSIONS_POLICY.encode()),
)
_HSTS = ((b"strict-transport-security", b"max-age=31536000"),)


def own_page_headers() -> list[tuple[bytes, bytes]]:
    """The headers of a page the proxy writes after this addon ran (the audit 503): the same
    fixed set, with the CSP of a page that needs no socket."""
    return [(b"content-security-policy", csp_for("").encode()), *_FIXED]


class SecurityHeaders:
    def __init__(self, public: PublicAddress) -> None:
        self._public = public
        self._fixed = _FIXED + (_HSTS if public.scheme == "https" else ())
        self._csp: dict[str, bytes] = {}  # session host -> its CSP (computed once)

    def _csp_for_host(self, host: str | None) -> bytes:
        key = host or ""
        found = self._csp.get(key)
        if found is None:
            ws = ""
            if host is not None:
                netloc = self._public.netloc(host)
                ws = f"ws://{netloc} wss://{netloc}"
            if len(self._csp) > 4096:
                self._csp.clear()
            found = self._csp[key] = csp_for(ws).encode()
        return found

    def response(self, flow: http.HTTPFlow) -> None:
        resp = flow.response
        if resp is None:
            return
        route = route_of(flow)
        # one pass over the header fields instead of one scan per removed name
        kept = [field for field in resp.headers.fields if field[0].lower() not in _REMOVE_BYTES]
        kept.append((b"content-security-policy", self._csp_for_host(route.host if route else None)))
        kept.extend(self._fixed)
        resp.headers.fields = tuple(kept)
