"""The answers mitmproxy itself writes when a flow fails, in printgate's words.

When the device does not answer through the tunnel, a body is over the hard
limit or a request cannot be parsed, mitmproxy's HTTP/1 layer answers the
browser directly (``_http1.make_error_response``): a bare page carrying the
internal error text (the relay's loopback address and port) and a
``Server: mitmproxy <version>`` header. ``install()`` replaces that function
for the process with one that says what happened and what to do, and names no
internal address or product. The original message still reaches the audit
trail through the ``error`` hook (``AuditRequests.error``).
mitmproxy has no option for this; ``tests/proxy/test_error_pages.py`` fails if
the hook point moves.
"""

from __future__ import annotations

from mitmproxy import http
from mitmproxy.net.http import http1
from mitmproxy.proxy.layers.http import _http1

from gateway.proxy.pages import page_html
from gateway.proxy.unix_upstream import TUNNEL_DOWN

_WHAT_TO_DO: dict[int, tuple[str, str]] = {
    502: ("The printer did not answer",
          "The device could not be reached through the agent's tunnel. If the customer's network "
          "dropped for a moment, the agent reconnects on its own: reload this page in a few seconds. "
          "If it keeps failing, end the session and open the device again from the portal."),
    504: ("The printer took too long to answer",
          "The device did not answer in time. Reload this page; if it keeps failing, the device may be "
          "busy or restarting."),
    413: ("Blocked by policy",
          "The request or the answer is over the proxy's size limit: file transfers to or from the "
          "customer's device are not allowed through remote web access."),
}
_GENERIC = ("The request could not be completed",
            "The remote web session could not pass this request on. Reload the page; if it keeps "
            "failing, end the session and open the device again from the portal.")


_TUNNEL_DOWN = ("The site's agent is not connected",
                "The tunnel to the customer's site is down: the printgate agent there is not connected "
                "(stopped, restarting, or its network is down), so the device cannot be reached. When the "
                "agent is back it reconnects on its own: reload this page in a minute. If it stays down, "
                "end the session and check the site's agent in the portal.")


def render_error_response(status_code: int, message: str = "") -> bytes:
    """A whole HTTP/1 response; ``message`` (internal detail) is deliberately not shown, only used
    to tell a missing tunnel (the agent is away) from a device that did not answer."""
    title, advice = _WHAT_TO_DO.get(status_code, _GENERIC)
    if status_code == 502 and TUNNEL_DOWN in message:
        title, advice = _TUNNEL_DOWN
    response = http.Response.make(
        status_code,
        page_html(title, f"<p>{advice}</p><p class=code>HTTP {status_code}</p>"),
        {"content-type": "text/html; charset=utf-8", "cache-control": "no-store", "connection": "close"},
    )
    return http1.assemble_response(response)


def install() -> None:
    """Use ``render_error_response`` for every error mitmproxy answers itself in this process."""
    _http1.make_error_response = render_error_response
