"""What an addon decided about a flow, kept in ``flow.metadata`` for the audit addon."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mitmproxy import http

    from gateway.proxy.routes import SessionRoute

DECISION_KEY = "printgate.decision"
ROUTE_KEY = "printgate.route"
GENERATED_KEY = "printgate.generated"  # the response was made by the proxy, not the device


@dataclass(frozen=True, slots=True)
class FlowDecision:
    """Why a flow was blocked (or answered by the proxy itself)."""

    blocked: bool
    rule: str  # stable code, e.g. "upload.multipart_file"
    reason: str  # human-readable, shown to the technician
    direction: str = "request"  # "request" | "response" | "session"
    content_type: str = ""
    size: int = 0
    decoded_size: int | None = None  # a compressed answer: bytes decoded before decoding stopped


def decision_of(flow: http.HTTPFlow) -> FlowDecision | None:
    value = flow.metadata.get(DECISION_KEY)
    return value if isinstance(value, FlowDecision) else None


def route_of(flow: http.HTTPFlow) -> SessionRoute | None:
    from gateway.proxy.routes import SessionRoute

    value = flow.metadata.get(ROUTE_KEY)
    return value if isinstance(value, SessionRoute) else None


def is_generated(flow: http.HTTPFlow) -> bool:
    return bool(flow.metadata.get(GENERATED_KEY))


def already_answered(flow: http.HTTPFlow) -> bool:
    """True once an earlier addon answered the request itself (later request addons skip it)."""
    return flow.response is not None or is_generated(flow)
