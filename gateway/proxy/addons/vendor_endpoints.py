"""Block known EWS transfer endpoints (firmware, backup/restore, address books, print jobs)."""

from __future__ import annotations

from mitmproxy import http

from gateway.proxy import pages
from gateway.proxy.decision import FlowDecision, already_answered
from gateway.proxy.vendor_profiles import VendorEndpoints


class VendorEndpointGuard:
    def __init__(self, endpoints: VendorEndpoints) -> None:
        self._endpoints = endpoints

    def request(self, flow: http.HTTPFlow) -> None:
        if already_answered(flow):
            return
        path, _, query = flow.request.path.partition("?")
        hit = self._endpoints.match(flow.request.method, path, query)
        if hit is None:
            return
        pages.block(
            flow,
            FlowDecision(
                True,
                f"vendor.{hit.kind}",
                f"This is a known {hit.vendor} file-transfer endpoint ({hit.kind.replace('_', ' ')}).",
                "request",
                flow.request.headers.get("content-type", ""),
                len(flow.request.raw_content or b""),
            ),
        )
