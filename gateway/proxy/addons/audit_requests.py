"""Last addon: every request is audited (method, path, status, bytes, blocked and why)."""

from __future__ import annotations

from mitmproxy import http

from gateway.proxy.addons.websocket_guard import DROPPED_KEY
from gateway.proxy.audit_batch import GroupCommitAudit
from gateway.proxy.decision import decision_of, route_of
from printgate.domain import AuditEventIn, Outcome
from printgate.interfaces import AuditSink
from printgate.logs import get_logger

log = get_logger(__name__)


def _source_ip(flow: http.HTTPFlow) -> str | None:
    peer = flow.client_conn.peername
    return str(peer[0]) if peer else None


class AuditRequests:
    """Blocked transfers and session events are stored before the answer goes out;
    allowed requests are queued for the next group commit (no per-request wait),
    and nothing is served while the audit store is failing (fail closed)."""

    def __init__(self, audit: AuditSink) -> None:
        self._audit = audit
        self._group = audit if isinstance(audit, GroupCommitAudit) else None

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
            details |= {
                "rule": decision.rule,
                "reason": decision.reason,
                "direction": decision.direction,
                "transfer_type": decision.content_type,
                "transfer_size": decision.size,
            }
        event_type = "dwa.transfer_blocked" if blocked and decision and decision.direction != "session" else "dwa.request"
        outcome = Outcome.BLOCKED if blocked else Outcome.SUCCESS
        if self._group is not None and decision is None:
            stored = not self._group.failing
            if stored:
                self._group.submit(self._event(flow, event_type, outcome, details))
        else:
            stored = await self._append(flow, event_type, outcome, details)
        if not stored:  # fail closed: what cannot be audited is not delivered
            flow.response = http.Response.make(
                503, b"audit unavailable: the request was not delivered", {"content-type": "text/plain"}
            )

    async def error(self, flow: http.HTTPFlow) -> None:
        details: dict[str, object] = {
            "method": flow.request.method,
            "path": flow.request.path.split("?", 1)[0],
            "error": flow.error.msg if flow.error else "unknown",
            "blocked": False,
        }
        await self._append(flow, "dwa.request", Outcome.FAILURE, details)

    async def websocket_end(self, flow: http.HTTPFlow) -> None:
        messages = flow.websocket.messages if flow.websocket else []
        details: dict[str, object] = {
            "path": flow.request.path.split("?", 1)[0],
            "messages": len(messages),
            "bytes": sum(len(m.content) for m in messages),
            "dropped": int(flow.metadata.get(DROPPED_KEY, 0)),
        }
        await self._append(flow, "dwa.websocket", Outcome.SUCCESS, details)

    @staticmethod
    def _event(flow: http.HTTPFlow, type_: str, outcome: Outcome, details: dict[str, object]) -> AuditEventIn:
        route = route_of(flow)
        return AuditEventIn(
            type=type_,
            outcome=outcome,
            session_id=route.session_id if route else None,
            source_ip=_source_ip(flow),
            details=details,
        )

    async def _append(self, flow: http.HTTPFlow, type_: str, outcome: Outcome, details: dict[str, object]) -> bool:
        try:
            await self._audit.append(self._event(flow, type_, outcome, details))
        except Exception as exc:  # the audit store failing must not crash the proxy; operators see it
            log.error("dwa.audit_failed", error=str(exc), type=type_)
            return False
        return True
