"""Compressed device answers are decoded here, with a bound, before any other addon reads them.

Every later addon reads ``.content``/``.text``, which makes mitmproxy decode the whole body at
once: a gzip or brotli "bomb" from a hostile device would fill the proxy's memory first. This
addon runs before them, decodes the body as a stream that stops at the largest response the
policy allows (``ProxyLimits.max_response_body``), and leaves an identity-encoded body behind;
a body that would decode larger, is corrupt or uses another encoding is refused and audited.
Compressed request bodies are refused unread by ``block_uploads``.
"""

from __future__ import annotations

from mitmproxy import http

from gateway.proxy import pages
from gateway.proxy.bounded_decode import IDENTITY, decode_bounded
from gateway.proxy.decision import FlowDecision, is_generated, route_of
from gateway.proxy.limits import ProxyLimits
from gateway.proxy.vendor_profiles import VendorEndpoints


def _encoded(fields: tuple[tuple[bytes, bytes], ...]) -> bool:
    """Whether a Content-Encoding field is there (one pass; ``headers.get`` scans with more work)."""
    for name, _value in fields:
        if name.lower() == b"content-encoding":
            return True
    return False


class BoundedDecoding:
    def __init__(self, limits: ProxyLimits, vendors: VendorEndpoints | None = None) -> None:
        self._limits = limits
        self._vendors = vendors
        self._by_vendor: dict[str, ProxyLimits] = {}

    def _limit_for(self, vendor: str) -> int:
        if self._vendors is None or not vendor:
            return self._limits.max_response_body
        found = self._by_vendor.get(vendor)
        if found is None:
            found = self._by_vendor[vendor] = self._vendors.limits_for(vendor, self._limits)
        return found.max_response_body

    def response(self, flow: http.HTTPFlow) -> None:
        resp = flow.response
        if resp is None or is_generated(flow):
            return
        if not _encoded(resp.headers.fields):  # exact: headers.get would give "", an identity encoding
            return
        encoding = resp.headers.get("content-encoding", "")
        if encoding.strip().lower() in IDENTITY:
            return
        route = route_of(flow)
        limit = self._limit_for(route.vendor if route else "")
        result = decode_bounded(resp.raw_content or b"", encoding, limit)
        if result.body is not None:
            del resp.headers["content-encoding"]
            resp.raw_content = result.body
            if "content-length" in resp.headers:
                resp.headers["content-length"] = str(len(result.body))
            return
        ctype = resp.headers.get("content-type", "")
        if result.problem == "too_large":
            decision = FlowDecision(
                True, "download.too_large",
                f"The compressed answer ({result.encoded_size} bytes) decodes to more than the "
                f"{limit}-byte limit; decoding stopped there.",
                "response", ctype, result.encoded_size, result.decoded_size)
        else:
            what = "uses an encoding the proxy does not decode" if result.problem == "unsupported" else "is corrupt"
            decision = FlowDecision(True, "download.content_encoding",
                                    f"The answer's Content-Encoding ({encoding[:40]}) {what}.",
                                    "response", ctype, result.encoded_size, result.decoded_size)
        pages.block(flow, decision)
