"""Response allowlist (fail closed): only page resources reach the technician.

Allowed: HTML, CSS, JavaScript (page limit), images and fonts that sniff as
such (image limit), small JSON/XML, tiny plain text. Blocked: any
``Content-Disposition`` naming an attachment or file, CSV, archives, PDFs,
firmware, octet-stream, and any body that sniffs as an archive or document
whatever its declared type.
"""

from __future__ import annotations

from mitmproxy import http

from gateway.proxy import pages, sniff
from gateway.proxy.addons.block_uploads import is_json_or_xml, media_type
from gateway.proxy.decision import FlowDecision, is_generated
from gateway.proxy.limits import ProxyLimits

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
CSS_TYPES = frozenset({"text/css"})
JS_TYPES = frozenset(
    {"text/javascript", "application/javascript", "application/x-javascript",
     "application/ecmascript", "text/ecmascript", "text/jscript"}
)
FONT_TYPES = frozenset(
    {"application/font-woff", "application/font-woff2", "application/x-font-woff",
     "application/x-font-ttf", "application/x-font-otf", "application/font-sfnt",
     "application/vnd.ms-fontobject"}
)
MAX_PLAIN_TEXT = 16 * 1024
NO_BODY_STATUSES = frozenset({101, 204, 304})


def _disposition_is_file(value: str) -> bool:
    lowered = value.lower()
    return "attachment" in lowered or "filename" in lowered or not lowered.strip().startswith("inline")


class BlockDownloads:
    def __init__(self, limits: ProxyLimits) -> None:
        self._limits = limits

    def response(self, flow: http.HTTPFlow) -> None:
        if is_generated(flow) or flow.response is None:
            return
        verdict = self.check(flow.request, flow.response)
        if verdict is None:
            self._declare_type(flow.response)
            return
        rule, reason, size = verdict
        pages.block(
            flow,
            FlowDecision(True, rule, reason, "response", flow.response.headers.get("content-type", ""), size),
        )

    @staticmethod
    def _declare_type(resp: http.Response) -> None:
        """Untyped bodies get the type they were checked as (the browser is told not to sniff)."""
        if "content-type" in resp.headers or not resp.raw_content:
            return
        body = resp.get_content(strict=False) or b""
        resp.headers["content-type"] = "text/html" if sniff.looks_like_html(body) else "text/plain"

    def check(self, req: http.Request, resp: http.Response) -> tuple[str, str, int] | None:
        body = resp.get_content(strict=False) or b""
        size = len(body)
        for value in resp.headers.get_all("content-disposition"):
            if _disposition_is_file(value):
                return "download.attachment", "The device offered a file download.", size
        if resp.status_code in NO_BODY_STATUSES or req.method.upper() == "HEAD":
            return None
        if not body:
            return None
        kind = sniff.transfer_kind(body)
        if kind is not None:
            return f"download.sniffed_{kind}", f"The response is a {kind} file, whatever its declared type.", size
        mtype = media_type(resp.headers.get("content-type", ""))
        lim = self._limits
        if mtype.startswith("image/"):
            if mtype != "image/svg+xml" and sniff.image_kind(body) is None:
                return "download.not_an_image", "The response claims to be an image but is not one.", size
            if size > lim.max_image_body:
                return "download.too_large", f"An image of {size} bytes is over the {lim.max_image_body}-byte limit.", size
            return None
        if mtype.startswith("font/") or mtype in FONT_TYPES:
            if sniff.font_kind(body) is None and mtype != "application/vnd.ms-fontobject":
                return "download.not_a_font", "The response claims to be a font but is not one.", size
            if size > lim.max_image_body:
                return "download.too_large", f"A font of {size} bytes is over the {lim.max_image_body}-byte limit.", size
            return None
        if not sniff.is_textual(body):
            return "download.binary", f"The response is binary data (declared {mtype or 'no type'}).", size
        if (mtype in HTML_TYPES or mtype in ("text/plain", "")) and sniff.looks_like_csv(body):
            return "download.table_export", "The response is a table export (CSV).", size
        if mtype in HTML_TYPES or mtype in CSS_TYPES or mtype in JS_TYPES:
            if size > lim.max_page_body:
                return "download.too_large", f"A page resource of {size} bytes is over the {lim.max_page_body}-byte limit.", size
            return None
        if is_json_or_xml(mtype):
            if size > lim.max_data_body:
                return "download.too_large", f"JSON/XML of {size} bytes is over the {lim.max_data_body}-byte limit.", size
            if sniff.has_encoded_blob(body):
                return "download.encoded_blob", "The response carries an encoded file.", size
            return None
        if mtype == "" and sniff.looks_like_html(body):
            mtype = "text/html"
            if size > lim.max_page_body:
                return "download.too_large", f"A page of {size} bytes is over the {lim.max_page_body}-byte limit.", size
            return None
        if mtype in ("text/plain", ""):
            if size > MAX_PLAIN_TEXT:
                return "download.too_large", f"Plain text of {size} bytes is over the {MAX_PLAIN_TEXT}-byte limit.", size
            return None
        return "download.type", f"Responses of type {mtype} are not page resources.", size
