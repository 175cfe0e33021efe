"""The proxy's own pages: blocked by policy, session ended, not signed in."""

from __future__ import annotations

import html
import json

from mitmproxy import http

from gateway.proxy.decision import DECISION_KEY, GENERATED_KEY, FlowDecision

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;color:#222}"
    "h1{font-size:1.4em}.code{color:#666;font-size:.9em}"
)


def page_html(title: str, body_html: str) -> bytes:
    """A whole page in the proxy's style (``body_html`` is trusted markup)."""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body_html}</body></html>"
    ).encode()


def _wants_json(flow: http.HTTPFlow) -> bool:
    req = flow.request
    if req.headers.get("x-requested-with", "").lower() == "xmlhttprequest":
        return True
    if req.headers.get("sec-fetch-mode", "") in {"cors", "same-origin", "no-cors"} and req.headers.get(
        "sec-fetch-dest", ""
    ) in {"empty", ""}:
        return True
    accept = req.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _respond(flow: http.HTTPFlow, status: int, content: bytes, content_type: str) -> None:
    flow.response = http.Response.make(
        status, content, {"content-type": content_type, "cache-control": "no-store"}
    )
    flow.metadata[GENERATED_KEY] = True


def block(flow: http.HTTPFlow, decision: FlowDecision) -> None:
    """Replace the flow's answer with a "blocked by policy" page (or 403 JSON for XHR)."""
    flow.metadata[DECISION_KEY] = decision
    if _wants_json(flow):
        body = json.dumps(
            {"error": "blocked_by_policy", "rule": decision.rule, "reason": decision.reason}
        ).encode()
        _respond(flow, 403, body, "application/json")
        return
    _respond(
        flow,
        403,
        page_html(
            "Blocked by policy",
            f"<p>{html.escape(decision.reason)}</p>"
            "<p>File transfers to or from the customer's device are not allowed through "
            "remote web access. Your session is still open: go back to continue.</p>"
            f"<p class=code>rule: {html.escape(decision.rule)}</p>"
            "<p><a href='javascript:history.back()'>Back</a></p>",
        ),
        "text/html; charset=utf-8",
    )


def session_ended(flow: http.HTTPFlow, reason: str) -> None:
    flow.metadata[DECISION_KEY] = FlowDecision(True, "session.ended", reason, "session")
    _respond(
        flow,
        410,
        page_html(
            "Remote session ended",
            f"<p>This remote web session has ended: {html.escape(reason)}.</p>"
            "<p>Open the device again from the portal to start a new session.</p>",
        ),
        "text/html; charset=utf-8",
    )


def not_signed_in(flow: http.HTTPFlow, reason: str, *, status: int = 401) -> None:
    flow.metadata[DECISION_KEY] = FlowDecision(True, "session.unauthenticated", reason, "session")
    _respond(
        flow,
        status,
        page_html(
            "Not signed in to this session",
            f"<p>{html.escape(reason)}</p>"
            "<p>Use the \"Open web page\" button in the portal to enter this session.</p>",
        ),
        "text/html; charset=utf-8",
    )


def unknown_host(flow: http.HTTPFlow) -> None:
    flow.metadata[DECISION_KEY] = FlowDecision(True, "session.unknown_host", "no such session", "session")
    _respond(
        flow,
        404,
        page_html("No such session", "<p>This address does not belong to any remote session.</p>"),
        "text/html; charset=utf-8",
    )


def redirect(flow: http.HTTPFlow, location: str, *, set_cookie: str | None = None) -> None:
    headers = {"location": location, "cache-control": "no-store"}
    flow.response = http.Response.make(303, b"", headers)
    if set_cookie is not None:
        flow.response.headers["set-cookie"] = set_cookie
    flow.metadata[GENERATED_KEY] = True


def bad_request(flow: http.HTTPFlow, decision: FlowDecision) -> None:
    """A request the proxy cannot pass on as sent (request line, framing): 400, connection closed."""
    flow.metadata[DECISION_KEY] = decision
    _respond(
        flow,
        400,
        page_html(
            "Request refused",
            f"<p>{html.escape(decision.reason)}</p>"
            "<p>The remote web session only passes ordinary page requests to the device.</p>"
            f"<p class=code>rule: {html.escape(decision.rule)}</p>",
        ),
        "text/html; charset=utf-8",
    )
    assert flow.response is not None
    flow.response.headers["connection"] = "close"


def internal_error(flow: http.HTTPFlow, decision: FlowDecision) -> None:
    """The proxy failed while checking this flow: nothing was passed on (fail closed)."""
    flow.metadata[DECISION_KEY] = decision
    _respond(
        flow,
        500,
        page_html(
            "The request was not passed on",
            "<p>The remote web session could not check this request, so it was not sent to the "
            "device. Reload the page; if it keeps failing, tell your administrator.</p>"
            f"<p class=code>rule: {html.escape(decision.rule)}</p>",
        ),
        "text/html; charset=utf-8",
    )
