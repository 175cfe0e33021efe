"""No service workers: a device script registered as one would outlive the page, see every
request of the session host and could answer them itself. The browser marks the fetch of a
service-worker script with ``Service-Worker: script``; that fetch is refused, so registration
fails. (``SecurityHeaders`` also drops ``Service-Worker-Allowed``.)"""

from __future__ import annotations

from mitmproxy import http

from gateway.proxy import pages, request_headers
from gateway.proxy.decision import FlowDecision, already_answered


class ServiceWorkerGuard:
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if already_answered(flow):
            return
        if request_headers.has_field(flow.request.headers.fields, b"service-worker"):  # one pass
            pages.block(flow, FlowDecision(
                True, "browser.service_worker",
                "Device pages may not install a service worker (it could store and serve files).",
                "response", flow.request.headers.get("service-worker", ""), 0,
            ))
