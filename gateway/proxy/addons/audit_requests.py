"""Last addon: every request is audited (method, path, status, bytes, blocked and why)."""

from __future__ import annotations

import asyncio

from mitmproxy import http

from gateway.proxy import ws_messages
from gateway.proxy.addons.security_headers import own_page_headers
from gateway.proxy.addons.websocket_guard import DROPPED_KEY, DROPPED_RULES_KEY
from gateway.proxy.audit_safe import safe_event
from gateway.proxy.decision import FlowDecision, decision_of, route_of
from gateway.proxy.pages import page_html
from gateway.proxy.ws_control import CONTROL_BYTES_KEY
from printgate import metrics
from printgate.domain import AuditEventIn, Outcome, event_types
from printgate.interfaces import AuditSink
from printgate.logs import get_logger

log = get_logger(__name__)


# the longest a response waits for its record (the store's lock held, a slow database): then
# 503, whether the request was allowed or refused (SQLite's busy timeout is as long)
AUDIT_WAIT_S = 30.0
OVER_LIMIT = "body_size_limit"  # in mitmproxy's error message for a body over its limit


def _declared_size(message: http.Message | None) -> int:
    declared = message.headers.get("content-length", "") if message is not None else ""
    return int(declared) if declared.strip().isdigit() else 0


def _decision_details(decision: FlowDecision) -> dict[str, object]:
    details: dict[str, object] = {
        "rule": decision.rule,
        "reason": decision.reason,
        "direction": decision.direction,
        "transfer_type": decision.content_type,
        "transfer_size": decision.size,
    }
    if decision.decoded_size is not None:
        details["decoded_size"] = decision.decoded_size
    return details


# request headers every browser sends; the rest is user-supplied data the device would receive
_ORDINARY_HEADERS = frozenset({
    "host", "user-agent", "accept", "accept-language", "accept-encoding", "connection", "referer",
    "origin", "cache-control", "pragma", "content-type", "content-length", "transfer-encoding",
    "upgrade-insecure-requests", "dnt", "te", "priority", "if-none-match", "if-modified-since",
    "sec-fetch-site", "sec-fetch-mode", "sec-fetch-dest", "sec-fetch-user", "sec-ch-ua",
    "sec-ch-ua-mobile", "sec-ch-ua-platform", "sec-websocket-key", "sec-websocket-version",
    "sec-websocket-extensions", "upgrade", "cookie", "x-requested-with",
})


def refused_data(request: http.Request) -> dict[str, dict[str, object]]:
    """What a refused request carried towards the device, by kind (count and size, never content)."""
    query = request.path.partition("?")[2]
    custom = [(k, v) for k, v in request.headers.items(multi=True) if k.lower() not in _ORDINARY_HEADERS]
    cookies = request.headers.get_all("cookie")
    out: dict[str, dict[str, object]] = {
        "query": {"fields": len([p for p in query.split("&") if p]), "bytes": len(query)},
        "headers": {"count": len(custom), "bytes": sum(len(k) + len(v) for k, v in custom),
                    "names": sorted({k.lower() for k, _ in custom})[:20]},
        "cookies": {"count": sum(len([c for c in v.split(";") if c.strip()]) for v in cookies),
                    "bytes": sum(len(v) for v in cookies)},
        "body": {"type": request.headers.get("content-type", ""),
                 "bytes": len(request.raw_content or b"") or _declared_size(request)},
    }
    return out


def audit_unavailable_response() -> http.Response:
    """The proxy's 503 when a request's record could not be stored: a printgate page with the
    security headers every other page carries (this addon runs after ``SecurityHeaders``)."""
    body = page_html(
        "The request was not passed on",
        "<p>The audit trail could not record this request in time, so its answer was not "
        "delivered. Reload the page in a minute; if it keeps failing, tell your administrator "
        "(the audit database is unavailable).</p><p class=code>HTTP 503 - audit unavailable</p>",
    )
    response = http.Response.make(503, body, {"content-type": "text/html; charset=utf-8", "retry-after": "30"})
    response.headers.fields = response.headers.fields + tuple(own_page_headers())
    return response


def _source_ip(flow: http.HTTPFlow) -> str | None:
    peer = flow.client_conn.peername
    return str(peer[0]) if peer else None


class AuditRequests:
    """Every request's record is stored before its answer goes out (allowed requests ride the
    writer's group commit: concurrent requests share one write); a request whose record cannot
    be written is not served (fail closed)."""

    def __init__(self, audit: AuditSink) -> None:
        self._audit = audit

    async def response(self, flow: http.HTTPFlow) -> None:
        resp = flow.response
        if resp is None:
            return
        decision = decision_of(flow)
        blocked = bool(decision and decision.blocked)
        details: dict[str, object] = {
            "method": flow.request.method,
            "path": flow.request.path.split("?", 1)[0],  # never the query: it may hold tokens
            "status": resp.status_code,
            "bytes_in": len(flow.request.raw_content or b""),
            "bytes_out": len(resp.raw_content or b""),
            "content_type": resp.headers.get("content-type", ""),
            "blocked": blocked,
        }
        if decision is not None:
            details |= _decision_details(decision)
            if blocked and decision.direction == "request":
                details["refused_data"] = refused_data(flow.request)
        event_type = event_types.DWA_TRANSFER_BLOCKED if blocked and decision and decision.direction != "session" else event_types.DWA_REQUEST
        outcome = Outcome.BLOCKED if blocked else Outcome.SUCCESS
        stored = await self._append(flow, event_type, outcome, details)
        metrics.PROXY_REQUESTS.labels("blocked" if blocked else "served" if stored else "refused").inc()
        if blocked and decision is not None:
            metrics.PROXY_BLOCKS.labels(decision.rule).inc()
        if not stored:  # fail closed: what cannot be audited is not delivered
            flow.response = audit_unavailable_response()

    async def error(self, flow: http.HTTPFlow) -> None:
        message = flow.error.msg if flow.error else "unknown"
        details: dict[str, object] = {
            "method": flow.request.method,
            "path": flow.request.path.split("?", 1)[0],
            "error": message,
            "blocked": False,
        }
        decision = decision_of(flow)
        if decision is None and OVER_LIMIT in message:  # mitmproxy refused a body over hard_body_limit
            request = flow.response is None or message.startswith("Request")
            direction = "request" if request else "response"
            message_of = flow.request if request else flow.response
            decision = FlowDecision(True, f"{'upload' if request else 'download'}.too_large",
                                    "The body is over the proxy's hard size limit.", direction,
                                    message_of.headers.get("content-type", "") if message_of else "",
                                    _declared_size(message_of))
        if decision is not None and decision.blocked:
            details |= {"blocked": True} | _decision_details(decision)
            await self._append(flow, event_types.DWA_TRANSFER_BLOCKED, Outcome.BLOCKED, details)
            return
        await self._append(flow, event_types.DWA_REQUEST, Outcome.FAILURE, details)

    async def websocket_end(self, flow: http.HTTPFlow) -> None:
        messages, size = ws_messages.totals(flow.websocket)  # the live list kept only the latest
        details: dict[str, object] = {
            "path": flow.request.path.split("?", 1)[0],
            "messages": messages,
            "bytes": size,
            "dropped": int(flow.metadata.get(DROPPED_KEY, 0)),
        }
        counted = flow.metadata.get(DROPPED_RULES_KEY)
        if counted:  # drops past the ones with a record of their own (websocket_guard.ITEMISED_DROPS)
            details["dropped_by_rule"] = dict(counted)
        control = flow.metadata.get(CONTROL_BYTES_KEY)
        if control:  # ping, pong and close-reason bytes, kept from the other side (ws_control)
            details["control_bytes_withheld"] = dict(control)
        await self._append(flow, event_types.DWA_WEBSOCKET, Outcome.SUCCESS, details)

    @staticmethod
    def _event(flow: http.HTTPFlow, type_: str, outcome: Outcome, details: dict[str, object]) -> AuditEventIn:
        route = route_of(flow)
        return safe_event(AuditEventIn(  # path, headers, errors: device/user text made valid
            type=type_,
            outcome=outcome,
            session_id=route.session_id if route else None,
            source_ip=_source_ip(flow),
            details=details,
        ))

    async def _append(self, flow: http.HTTPFlow, type_: str, outcome: Outcome, details: dict[str, object]) -> bool:
        try:
            async with asyncio.timeout(AUDIT_WAIT_S):
                await self._audit.append(self._event(flow, type_, outcome, details))
        except TimeoutError:
            log.error("dwa.audit_failed", error=f"no answer from the audit store within {AUDIT_WAIT_S:g} s", type=type_)
            return False
        except Exception as exc:  # the audit store failing must not crash the proxy; operators see it
            log.error("dwa.audit_failed", error=str(exc), type=type_)
            return False
        return True
