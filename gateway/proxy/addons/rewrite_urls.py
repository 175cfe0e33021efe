"""Rewrite addresses between the device and the session host, both ways.

Towards the device: Host, Origin, Referer, query and small bodies. Towards the
browser: Location, Content-Location, Refresh, Link, Set-Cookie and every text
body (HTML, CSS, JavaScript, JSON, XML), decoded and re-encoded with the
same content-encoding and charset (mitmproxy's ``Message.text``).
"""

from __future__ import annotations

from mitmproxy import http

from gateway.proxy.addons.block_uploads import media_type
from gateway.proxy.addons.session_auth import cookie_name
from gateway.proxy.charset import editable_as_bytes
from gateway.proxy.decision import already_answered, is_generated, route_of
from gateway.proxy.deps import PublicAddress
from gateway.proxy.rewriter import Origin, UrlRewriter
from gateway.proxy.routes import SessionRoute

URL_HEADERS_TO_BROWSER = ("location", "content-location", "refresh", "link")
TEXT_TYPES_PREFIX = ("text/",)
TEXT_TYPES = frozenset(
    {"application/javascript", "application/x-javascript", "application/ecmascript",
     "application/json", "application/xml", "application/xhtml+xml", "image/svg+xml", ""}
)


def is_text_type(mtype: str) -> bool:
    return mtype.startswith(TEXT_TYPES_PREFIX) or mtype in TEXT_TYPES or mtype.endswith(("+json", "+xml"))


class RewriteUrls:
    def __init__(self, public: PublicAddress) -> None:
        self._public = public
        self._cache: dict[tuple[str, str, str], UrlRewriter] = {}

    def rewriter(self, route: SessionRoute) -> UrlRewriter:
        session_origin = self._public.origin(route.host)
        key = (route.session_id, route.device_origin, session_origin)
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) > 4096:
                self._cache.clear()
            found = self._cache[key] = UrlRewriter(route.device_origin, session_origin)
        return found

    def request(self, flow: http.HTTPFlow) -> None:
        if already_answered(flow):
            return
        route = route_of(flow)
        if route is None:
            return
        rw = self.rewriter(route)
        req = flow.request
        req.headers["host"] = Origin.parse(route.device_origin).netloc
        for name in ("origin", "referer"):
            if name in req.headers:
                req.headers[name] = rw.to_device(req.headers[name])
        req.path = rw.to_device(req.path)
        if (req.raw_content and is_text_type(media_type(req.headers.get("content-type", "")))) or (
            req.raw_content and media_type(req.headers.get("content-type", "")) == "application/x-www-form-urlencoded"
        ):
            body = req.raw_content or b""
            new = rw.to_device_bytes(body)
            if new is not body:
                req.raw_content = new
                if "content-length" in req.headers:
                    req.headers["content-length"] = str(len(new))

    def response(self, flow: http.HTTPFlow) -> None:
        resp = flow.response
        route = route_of(flow)
        if resp is None or route is None or is_generated(flow):
            return
        rw = self.rewriter(route)
        # one pass over the header names instead of a scan per header that may carry an address
        present = {name.lower() for name, _value in resp.headers.fields}
        for name in URL_HEADERS_TO_BROWSER:
            if name.encode() not in present:
                continue
            values = resp.headers.get_all(name)
            if values:
                resp.headers.set_all(name, [rw.to_browser(v) for v in values])
        cookies = resp.headers.get_all("set-cookie") if b"set-cookie" in present else []
        if cookies:
            reserved = frozenset({cookie_name("http"), cookie_name("https")})
            kept = [c for c in (rw.set_cookie_to_browser(v, reserved_names=reserved) for v in cookies) if c]
            resp.headers.set_all("set-cookie", kept)
        content_type = resp.headers.get("content-type", "")
        if not resp.raw_content or not is_text_type(media_type(content_type)):
            return
        content = resp.get_content(strict=False) or b""
        if editable_as_bytes(content_type, content):  # the usual case: no decode/encode round trip
            new = rw.to_browser_bytes(content)
            if new is not content:
                resp.set_content(new)
            return
        text = resp.get_text(strict=False)  # UTF-16 and friends: the address is not ASCII bytes
        if text is None:
            return
        new_text = rw.to_browser(text)
        if new_text is not text:
            resp.text = new_text

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        route = route_of(flow)
        if route is None or flow.websocket is None or not flow.websocket.messages:
            return
        message = flow.websocket.messages[-1]
        if not message.is_text:
            return
        rw = self.rewriter(route)
        if message.from_client:
            message.text = rw.to_device(message.text)
        else:
            message.text = rw.to_browser(message.text)
