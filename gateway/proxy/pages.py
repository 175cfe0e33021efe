"""The proxy's own pages: blocked by policy, session ended, not signed in, no such session.

Each says what happened in plain words and links back to the portal, where the technician
finds the device and "My sessions" (to rejoin a session that is still open). The rule code
is kept small at the end, for support. ``SessionAuth`` puts the portal's public URL in
``flow.metadata[PORTAL_KEY]`` before anything can answer the flow.
"""

from __future__ import annotations

import html
import json

from mitmproxy import http

from gateway.errors import BLOCKED_BY_POLICY
from gateway.proxy.decision import DECISION_KEY, GENERATED_KEY, FlowDecision

PORTAL_KEY = "printgate.portal_url"

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:40em;margin:2em auto;padding:0 1em;color:#222;"
    "line-height:1.45}h1{font-size:1.4em}.code{color:#666;font-size:.8em;margin-top:2em}"
    "nav{margin-top:1.5em;display:flex;flex-wrap:wrap;gap:.5em 1em}"
    "nav a{display:inline-block;padding:.45em .9em;border:1px solid #1f3a60;border-radius:4px;"
    "color:#1f3a60;text-decoration:none}nav a.main{background:#1f3a60;color:#fff}"
)


def _portal_links(portal_url: str, *, back: bool = False) -> str:
    """Links to the portal and to "My sessions" (or plain words when the URL is unknown)."""
    links = ["<a href='javascript:history.back()'>Back to the device page</a>"] if back else []
    base = portal_url.rstrip("/")
    if base:
        links.append(f"<a class=main href='{html.escape(base + '/sessions')}'>My sessions</a>")
        links.append(f"<a href='{html.escape(base + '/devices')}'>printgate portal</a>")
    else:
        links.append("<span>Go back to the printgate portal (My sessions).</span>")
    return "<nav>" + "".join(links) + "</nav>"


def _support_code(rule: str) -> str:
    return f"<p class=code>Reference for support: {html.escape(rule)}</p>"


def page_html(title: str, body_html: str) -> bytes:
    """A whole page in the proxy's style (``body_html`` is trusted markup)."""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)} - printgate</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{html.escape(title)}</h1>{body_html}</main></body></html>"
    ).encode()


def _portal_of(flow: http.HTTPFlow) -> str:
    value = flow.metadata.get(PORTAL_KEY, "")
    return value if isinstance(value, str) else ""


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
            {"error": BLOCKED_BY_POLICY, "rule": decision.rule, "reason": decision.reason}
        ).encode()
        _respond(flow, 403, body, "application/json")
        return
    _respond(
        flow,
        403,
        page_html(
            "Blocked by policy",
            "<p>printgate stopped this request: remote web access does not let files go to or "
            "from the customer's device (firmware, backups, address books, print jobs).</p>"
            f"<p>{html.escape(decision.reason)}</p>"
            "<p>Your session is still open: go back to the device page to continue. A file that has "
            "to reach this device or leave it goes another way: on site, or through the customer's "
            "own administrator.</p>"
            + _portal_links(_portal_of(flow), back=True) + _support_code(decision.rule),
        ),
        "text/html; charset=utf-8",
    )


def session_ended(flow: http.HTTPFlow, reason: str, *, status: int = 410) -> None:
    """The "session ended" page: 410 for a request to a session that is gone; ``status`` 200 when this
    request itself ended it (the bar's "End session" succeeded: its audit record says -> 200)."""
    flow.metadata[DECISION_KEY] = FlowDecision(True, "session.ended", reason, "session")
    _respond(
        flow,
        status,
        page_html(
            "Remote session ended",
            f"<p>This remote web session has ended ({html.escape(reason)}), so the device's "
            "page cannot be shown any more.</p>"
            "<p>To work on the device again, open it from the portal: it starts a new session.</p>"
            + _portal_links(_portal_of(flow)) + _support_code("session.ended"),
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
            "<p>A remote session opens only in the browser that started it from the portal. "
            "If the session is still running, rejoin it from <b>My sessions</b>; otherwise open "
            "the device again from the portal.</p>"
            + _portal_links(_portal_of(flow)) + _support_code("session.unauthenticated"),
        ),
        "text/html; charset=utf-8",
    )


def unknown_host(flow: http.HTTPFlow) -> None:
    flow.metadata[DECISION_KEY] = FlowDecision(True, "session.unknown_host", "no such session", "session")
    _respond(
        flow,
        404,
        page_html(
            "No such session",
            "<p>This address does not belong to any open remote session: it may have ended "
            "long ago, or the link is mistyped.</p>"
            "<p>Find your open sessions under <b>My sessions</b> in the portal, or open the "
            "device again from there.</p>"
            + _portal_links(_portal_of(flow)) + _support_code("session.unknown_host"),
        ),
        "text/html; charset=utf-8",
    )


def other_node(flow: http.HTTPFlow, label: str, own: str) -> None:
    """A session host of another gateway node reached this one: the load balancer's host map
    (``printgate nodes haproxy``) is stale or bypassed. Nothing of the session is here."""
    flow.metadata[DECISION_KEY] = FlowDecision(True, "session.other_node",
                                               f"session host of node {label} reached node {own}", "session")
    _respond(
        flow,
        421,
        page_html(
            "Session served by another gateway node",
            f"<p>This remote session is served by gateway node <b>{html.escape(label)}</b>, but the "
            f"request reached node <b>{html.escape(own)}</b>, which cannot show it.</p>"
            "<p>Reload the page in a few seconds; if this page stays, the load balancer's node map is "
            "out of date: ask your administrator to regenerate it (<code>printgate nodes haproxy</code>). "
            "The session may also have ended with its node.</p>"
            + _portal_links(_portal_of(flow)) + _support_code("session.other_node"),
        ),
        "text/html; charset=utf-8",
    )


def not_found(flow: http.HTTPFlow, decision: FlowDecision) -> None:
    """An address under the proxy's own prefix that it does not serve."""
    flow.metadata[DECISION_KEY] = decision
    _respond(
        flow,
        404,
        page_html(
            "Page not found",
            "<p>printgate has no page at this address. The device's own pages are still there.</p>"
            + _portal_links(_portal_of(flow), back=True) + _support_code(decision.rule),
        ),
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
            + _portal_links(_portal_of(flow), back=True) + _support_code(decision.rule),
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
            + _portal_links(_portal_of(flow), back=True) + _support_code(decision.rule),
        ),
        "text/html; charset=utf-8",
    )
