"""Session authentication: launch token -> host-only cookie; every request checked.

``/__printgate/launch?token=`` exchanges a one-time token for an HttpOnly,
SameSite=Strict cookie on the session's own host (Secure over TLS).
``/__printgate/end`` (POST with CSRF token) ends the session.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re

from mitmproxy import http

from gateway import session_hosts
from gateway.proxy import pages
from gateway.proxy.decision import DECISION_KEY, ROUTE_KEY, FlowDecision, already_answered, route_of
from gateway.proxy.deps import ProxyDeps
from gateway.proxy.routes import SessionRoute, Tombstone
from printgate.domain.dwa import ENDED_BY_TECHNICIAN
from printgate.errors import TokenInvalid
from printgate.logs import get_logger

log = get_logger(__name__)

PREFIX = "/__printgate/"
COOKIE_KEY = "printgate.cookie"
# what RouteTable.issue_launch_token makes (secrets.token_urlsafe(32)); anything else is refused unread
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")


def cookie_name(scheme: str) -> str:
    return "__Host-printgate_dwa" if scheme == "https" else "printgate_dwa"


def csrf_token(key: bytes, cookie: str) -> str:
    return hmac.new(key, b"csrf:" + cookie.encode(), hashlib.sha256).hexdigest()


def _host_of(flow: http.HTTPFlow) -> str:
    host = flow.request.host_header or ""
    if host.startswith("["):
        return host.lower()
    return host.rsplit(":", 1)[0].lower() if ":" in host else host.lower()


def _path_of(flow: http.HTTPFlow) -> str:
    return flow.request.path.split("?", 1)[0]


def _read_cookie(flow: http.HTTPFlow, name: str) -> str | None:
    for value in flow.request.cookies.get_all(name):
        return value
    return None


def _has_body(flow: http.HTTPFlow) -> bool:
    headers = flow.request.headers
    return "transfer-encoding" in headers or headers.get("content-length", "0").strip() not in ("", "0")


def _launch_token(flow: http.HTTPFlow) -> str | None:
    """The launch token of the query, or None when it is missing or not one the proxy could have made
    (invalid percent-encoding, other characters: never decoded further, never passed on)."""
    query = flow.request.path.partition("?")[2]
    tokens = [value for key, _, value in (p.partition("=") for p in query.split("&")) if key == "token"]
    if len(tokens) != 1 or not _TOKEN.fullmatch(tokens[0]):
        return None
    return tokens[0]


def _strip_cookie(flow: http.HTTPFlow, name: str) -> None:
    """Never pass the proxy's own cookie on to the device."""
    if "cookie" not in flow.request.headers:
        return
    kept = [(k, v) for k, v in flow.request.cookies.items(multi=True) if k != name]
    if kept:
        flow.request.cookies = kept
    else:
        del flow.request.headers["cookie"]


EXTEND_REFUSED = ("no more time: this session already has the longest time the policy allows, or the policy "
                  "refuses more time now; end it and open a new one, or ask your admin")


class SessionAuth:
    def __init__(self, deps: ProxyDeps) -> None:
        self._deps = deps
        self._suffix = "." + deps.dwa_domain.lower().strip(".")

    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        """Session and cookie are checked on the headers, before any body is read: a request
        without this session's cookie never makes the proxy buffer its body, and whatever
        happens to the flow later (an over-limit body, an error) is audited for its session."""
        flow.metadata[pages.PORTAL_KEY] = self._deps.portal_url  # for the links of our own pages
        if already_answered(flow):
            return
        host = _host_of(flow)
        if not host.endswith(self._suffix):
            pages.unknown_host(flow)
            return
        entry = await self._deps.routes.resolve(host)
        if entry is None:
            named = session_hosts.parse_session_host(host, self._deps.dwa_domain)
            own = self._deps.node_label
            if named is not None and named.label is not None and own is not None and named.label != own:
                pages.other_node(flow, named.label, own)  # the load balancer sent it to the wrong node
            else:
                pages.unknown_host(flow)
            return
        if isinstance(entry, Tombstone):
            pages.session_ended(flow, entry.reason)
            return
        flow.metadata[ROUTE_KEY] = entry
        if _path_of(flow) == PREFIX + "launch":
            if flow.request.method not in ("GET", "HEAD") or _has_body(flow):
                pages.not_signed_in(flow, "A launch link is opened with a plain GET request.", status=405)
            return  # the one-time token is redeemed in request()
        name = cookie_name(self._deps.public.scheme)
        cookie = _read_cookie(flow, name)
        if cookie is None or not self._deps.routes.cookie_is_valid(entry.session_id, cookie):
            pages.not_signed_in(flow, "This browser is not signed in to this remote session.")
            return
        flow.metadata[COOKIE_KEY] = cookie
        _strip_cookie(flow, name)

    async def request(self, flow: http.HTTPFlow) -> None:
        if already_answered(flow):
            return
        route = route_of(flow)
        if route is None:  # requestheaders() resolves or answers every request; fail closed anyway
            pages.unknown_host(flow)
            return
        path = _path_of(flow)
        if path == PREFIX + "launch":
            await self._launch(flow, route, _host_of(flow), cookie_name(self._deps.public.scheme))
            return
        cookie = flow.metadata.get(COOKIE_KEY)
        if not isinstance(cookie, str):  # requestheaders() refused it already; fail closed anyway
            pages.not_signed_in(flow, "This browser is not signed in to this remote session.")
            return
        if path == PREFIX + "end":
            await self._end(flow, route, cookie)
            return
        if path == PREFIX + "extend":
            await self._extend(flow, route, cookie)
            return
        if path == PREFIX + "ping":
            await self._ping(flow, route, cookie)
            return
        if path.startswith(PREFIX):
            pages.not_found(flow, FlowDecision(True, "proxy.not_found", "unknown proxy endpoint", "session"))

    async def _launch(self, flow: http.HTTPFlow, route: SessionRoute, host: str, name: str) -> None:
        token = _launch_token(flow)
        if token is None:
            pages.not_signed_in(flow, "The launch link is damaged; open the device again from the portal.", status=403)
            return
        try:
            cookie = await self._deps.routes.redeem(host, token)
        except TokenInvalid as exc:
            pages.not_signed_in(flow, exc.message, status=403)
            return
        attrs = "Path=/; HttpOnly; SameSite=Strict"
        if self._deps.secure_cookies:
            attrs += "; Secure"
        flow.metadata[DECISION_KEY] = FlowDecision(False, "session.launched", "launch token redeemed", "session")
        # A 200 page that navigates on: a cross-site redirect chain would not send a
        # SameSite=Strict cookie, a same-origin navigation does.
        body = (
            b"<!doctype html><html><head><meta charset=utf-8>"
            b"<meta http-equiv=refresh content='0;url=/'><title>Opening device</title></head>"
            b"<body><p>Opening the device web page&hellip; <a href='/'>continue</a></p></body></html>"
        )
        flow.response = http.Response.make(
            200, body, {"content-type": "text/html; charset=utf-8", "cache-control": "no-store"}
        )
        flow.response.headers["set-cookie"] = f"{name}={cookie}; {attrs}"
        flow.metadata["printgate.generated"] = True
        log.info("dwa.launch", session=route.session_id)

    def _form_is_genuine(self, flow: http.HTTPFlow, route: SessionRoute, cookie: str, what: str) -> bool:
        """POST, CSRF token bound to this browser's cookie, and (if sent) our own Origin."""
        if flow.request.method != "POST":
            pages.block(flow, FlowDecision(True, f"session.{what}_method", f"{what} needs a POST", "session"))
            return False
        expected = csrf_token(self._deps.csrf_key, cookie)
        given = flow.request.urlencoded_form.get("csrf", "") or flow.request.headers.get("x-printgate-csrf", "")
        origin = flow.request.headers.get("origin")
        if not hmac.compare_digest(expected, given) or (
            origin is not None and origin != self._deps.public.origin(route.host)
        ):
            pages.block(flow, FlowDecision(True, f"session.{what}_csrf", "the form was not sent by this page", "session"))
            return False
        return True

    async def _extend(self, flow: http.HTTPFlow, route: SessionRoute, cookie: str) -> None:
        if not self._form_is_genuine(flow, route, cookie, "extend"):
            return
        new_expiry = None
        if self._deps.on_extend_request is not None:
            new_expiry = await self._deps.on_extend_request(route.session_id)
        if new_expiry is None:
            pages.block(flow, FlowDecision(True, "session.extend_refused", EXTEND_REFUSED, "session"))
            return
        self._deps.routes.extend(route.session_id, new_expiry)
        flow.metadata[DECISION_KEY] = FlowDecision(False, "session.extended", f"extended until {new_expiry.isoformat()}", "session")
        if "application/json" in flow.request.headers.get("accept", ""):  # the banner's button: no reload
            flow.response = http.Response.make(
                200, json.dumps({"expires_at": int(new_expiry.timestamp())}).encode(),
                {"content-type": "application/json", "cache-control": "no-store"})
            flow.metadata["printgate.generated"] = True
            log.info("dwa.extended", session=route.session_id, until=new_expiry.isoformat())
            return
        back = flow.request.headers.get("referer", "")
        origin = self._deps.public.origin(route.host)
        pages.redirect(flow, back if back.startswith(origin + "/") else "/")
        log.info("dwa.extended", session=route.session_id, until=new_expiry.isoformat())

    async def _ping(self, flow: http.HTTPFlow, route: SessionRoute, cookie: str) -> None:
        """"Stay" in the banner's idle warning: the technician is there (counts as activity)."""
        if not self._form_is_genuine(flow, route, cookie, "ping"):
            return
        self._deps.routes.touch(route.session_id)
        flow.metadata[DECISION_KEY] = FlowDecision(False, "session.still_here", "the technician is still there", "session")
        flow.response = http.Response.make(204, b"", {"cache-control": "no-store"})
        flow.metadata["printgate.generated"] = True

    async def _end(self, flow: http.HTTPFlow, route: SessionRoute, cookie: str) -> None:
        if not self._form_is_genuine(flow, route, cookie, "end"):
            return
        await self._deps.on_end_request(route.session_id)
        self._deps.routes.remove(route.session_id, ENDED_BY_TECHNICIAN)
        pages.session_ended(flow, ENDED_BY_TECHNICIAN, status=200)  # this POST succeeded; later requests get 410
        flow.metadata[DECISION_KEY] = FlowDecision(False, "session.end", ENDED_BY_TECHNICIAN, "session")
        log.info("dwa.end_requested", session=route.session_id)
