"""Block known EWS transfer endpoints (firmware, backup/restore, address books, print jobs)."""

from __future__ import annotations

import posixpath
from urllib.parse import unquote

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
        hit = None
        for candidate in _path_forms(path):
            hit = self._endpoints.match(flow.request.method, candidate, unquote(query))
            if hit is not None:
                break
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


def _path_forms(path: str) -> tuple[str, ...]:
    """The path as sent and as a device's web server would resolve it.

    Devices percent-decode, merge repeated slashes, treat backslashes as slashes
    and resolve dot segments, so ``//hp/device/%46irmwareUpgrade`` or
    ``/x/../hp/device/FirmwareUpgrade`` reach the same handler as the listed
    path: the rules are matched against that resolved form too.
    """
    decoded = unquote(unquote(path)).replace("\\", "/")
    resolved = posixpath.normpath("/" + decoded.lstrip("/")) if decoded else "/"
    if decoded.endswith("/") and resolved != "/":
        resolved += "/"
    return (path, resolved) if resolved != path else (path,)
