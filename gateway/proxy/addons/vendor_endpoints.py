"""Block known EWS transfer endpoints (firmware, backup/restore, address books, print jobs)."""

from __future__ import annotations

import functools
import posixpath
from urllib.parse import unquote

from mitmproxy import http

from gateway.proxy import pages
from gateway.proxy.decision import FlowDecision, already_answered
from gateway.proxy.vendor_profiles import TransferEndpoint, VendorEndpoints

MEMO_BELOW = 2048  # characters: shorter request targets' answers are remembered (``_hit_memo``)


class VendorEndpointGuard:
    def __init__(self, endpoints: VendorEndpoints) -> None:
        self._endpoints = endpoints
        # A page's assets and polls repeat the same few addresses: the endpoint rules (a dozen
        # regular expressions on two forms of the path) are run once per method and target.
        # Exact: ``_hit`` is a pure function of them (this guard's rules never change).
        self._hit_memo = functools.lru_cache(maxsize=1024)(self._hit)

    def request(self, flow: http.HTTPFlow) -> None:
        if already_answered(flow):
            return
        method, target = flow.request.method, flow.request.path
        hit = self._hit_memo(method, target) if len(target) < MEMO_BELOW else self._hit(method, target)
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

    def _hit(self, method: str, target: str) -> TransferEndpoint | None:
        """The first endpoint rule the request (any form of its path) matches, or None."""
        path, _, query = target.partition("?")
        for candidate in _path_forms(path):
            hit = self._endpoints.match(method, candidate, unquote(query))
            if hit is not None:
                return hit
        return None


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
