"""Request allowlist (fail closed): no file ever travels from the technician to the device.

Allowed: GET/HEAD/OPTIONS without a body; POST with a small
``application/x-www-form-urlencoded``, ``text/plain``, JSON or XML body, or a
multipart form without any file part. Everything else is blocked, and so is an
allowed body that carries a file anyway: an archive or document signature at
any offset, a printer job (PostScript, PJL) after a leading newline, an XML or
other markup document sent as plain text, or an encoded file (base64, hex, ...)
in the body, in one field or split over many. Field names are checked like values (and
together with them), every field of a repeated name too; a multipart form has nothing but
whitespace before its first boundary and after its closing one, and its parts no headers but
``Content-Disposition`` and ``Content-Type`` (whose values are checked like fields).
"""

from __future__ import annotations

import json
import re
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP

from mitmproxy import http

from gateway.proxy import encoded, pages, request_headers, sniff
from gateway.proxy.decision import FlowDecision, already_answered, route_of
from gateway.proxy.limits import ProxyLimits
from gateway.proxy.vendor_profiles import VendorEndpoints

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_ALLOWED_METHODS = SAFE_METHODS | {"POST"}
JSON_TYPES = frozenset({"application/json", "text/json"})
XML_TYPES = frozenset({"application/xml", "text/xml"})
_MARKUP_DOCUMENT = ("<?xml", "<!doctype", "<svg", "<html", "<plist", "<xsl:")
Verdict = tuple[str, str]
_ELEMENT_START = re.compile(rb"<[A-Za-z_][\w.:-]*[\s/>]")


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def is_json_or_xml(mtype: str) -> bool:
    return mtype in JSON_TYPES or mtype in XML_TYPES or mtype.endswith(("+json", "+xml"))


class BlockUploads:
    def __init__(self, limits: ProxyLimits, vendors: VendorEndpoints | None = None) -> None:
        self._limits = limits
        self._vendors = vendors
        self._by_vendor: dict[str, BlockUploads] = {}

    def _for_vendor(self, vendor: str) -> BlockUploads:
        """The same checks with the vendor profile's limits (form sizes, thresholds)."""
        if self._vendors is None or not vendor:
            return self
        found = self._by_vendor.get(vendor)
        if found is None:
            found = self._by_vendor[vendor] = BlockUploads(self._vendors.limits_for(vendor, self._limits))
        return found

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        """A body declared larger than any allowed one is refused before it is read."""
        if already_answered(flow):
            return
        declared = (request_headers.field_value(flow.request.headers.fields, b"content-length") or "").strip()
        if not declared.isdigit():  # no length declared (a GET): nothing to compare
            return
        route = route_of(flow)
        limits = self._for_vendor(route.vendor if route else "")._limits
        if int(declared) > limits.max_request_body:
            self._block(flow, ("upload.too_large",
                               f"A request body of {declared} bytes is over every allowed size."), int(declared))

    def request(self, flow: http.HTTPFlow) -> None:
        if already_answered(flow):
            return
        route = route_of(flow)
        verdict = self._for_vendor(route.vendor if route else "").check(flow.request)
        if verdict is not None:
            self._block(flow, verdict, len(flow.request.raw_content or b""))

    @staticmethod
    def _block(flow: http.HTTPFlow, verdict: tuple[str, str], size: int) -> None:
        rule, reason = verdict
        pages.block(flow, FlowDecision(True, rule, reason, "request", flow.request.headers.get("content-type", ""), size))

    def check(self, req: http.Request) -> tuple[str, str] | None:
        if not req.raw_content:
            # exact without the analysis budget: on a request without a body ``_check`` looks at
            # the method and two headers only and returns before any analysis it could stop
            return self._check(req)
        try:
            with encoded.analysis_budget():
                return self._check(req)
        except encoded.TooComplexToCheck as exc:  # crafted to stall the proxy: fail closed
            return "upload.too_complex", f"The request is refused, not let through unchecked: {exc}."

    def _check(self, req: http.Request) -> tuple[str, str] | None:
        method = req.method.upper()
        fields = req.headers.fields
        ctype = request_headers.field_value(fields, b"content-type") or ""  # headers.get, one pass
        mtype = media_type(ctype)
        raw = req.raw_content or b""
        # no body sniffs as anything (every magic has bytes): an empty one is not sniffed
        if mtype == "application/ipp" or (raw and sniff.transfer_kind(raw) == "ipp"):
            return "upload.ipp", "Print jobs (IPP) cannot be sent to the device remotely."
        if method not in _ALLOWED_METHODS:
            return "upload.method", f"The HTTP method {method} is not allowed (it can write files)."
        encoding = request_headers.field_value(fields, b"content-encoding")
        encoding = "identity" if encoding is None else encoding.strip().lower()
        if encoding not in ("", "identity"):
            return "upload.encoded_body", "Compressed request bodies are not allowed."
        if method in SAFE_METHODS:
            if raw:
                return "upload.body_on_safe_method", f"A {method} request may not carry a body."
            return None
        if not raw:
            return None
        kind = sniff.transfer_kind(raw) or sniff.embedded_kind(raw)
        if kind is not None:
            return f"upload.sniffed_{kind}", f"The request body is (or contains) a {kind} file, whatever its declared type."
        job = sniff.job_or_document_kind(raw, anywhere=True)
        if job is not None:
            return f"upload.sniffed_{job}", f"The request body carries a {job} document or print job."
        if mtype.startswith("multipart/"):
            return self._check_multipart(ctype, raw)  # judges each part (file parts by name)
        if not sniff.is_textual_throughout(raw):
            return "upload.binary_body", "The request body is binary data."
        size = len(raw)
        threshold = self._limits.encoded_min_upload
        if mtype == "application/x-www-form-urlencoded":
            if size > self._limits.max_form_body:
                return "upload.too_large", f"Form data of {size} bytes is over the {self._limits.max_form_body}-byte limit."
            return _check_fields(form_strings(req), threshold, self._limits.max_text_body)
        if mtype == "text/plain" or mtype == "":
            if size > self._limits.max_text_body:
                return "upload.too_large", f"Text of {size} bytes is over the {self._limits.max_text_body}-byte limit."
            if _is_markup_document(raw):
                return "upload.document_as_text", "The text sent is a markup (XML/HTML/SVG) document: a file."
        elif is_json_or_xml(mtype):
            if size > self._limits.max_json_body:
                return "upload.too_large", f"JSON/XML of {size} bytes is over the {self._limits.max_json_body}-byte limit."
            if mtype in JSON_TYPES or mtype.endswith("+json"):
                verdict = _check_json_strings(raw, threshold)
                if verdict is not None:
                    return verdict
        else:
            return "upload.type", f"Request bodies of type {mtype or 'unknown'} are not allowed."
        hit = (encoded.find_encoded(raw, threshold, strict=True)
               or encoded.encoded_total(raw, self._limits.encoded_allowance_upload)
               or encoded.any_alphabet(raw, self._limits.encoded_allowance_upload))
        if hit is not None:
            return "upload.encoded_blob", f"The request body carries {hit.describe()}: an encoded file."
        return None

    def _check_multipart(self, ctype: str, raw: bytes) -> tuple[str, str] | None:
        if len(raw) > self._limits.max_form_body:
            return "upload.too_large", f"Form data of {len(raw)} bytes is over the {self._limits.max_form_body}-byte limit."
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + ctype.encode("latin-1", "replace") + b"\r\n\r\n" + raw
        )
        boundary = message.get_boundary()
        if boundary is None:
            return "upload.multipart_malformed", "The multipart form could not be read."
        delimiter = b"--" + boundary.encode("latin-1", "replace")
        verdict = _check_outside_parts(message, raw, delimiter)
        if verdict is not None:
            return verdict
        if not message.is_multipart():  # a form without fields (the closing line only), else unreadable
            if raw.strip(_BLANK) == delimiter + b"--":
                return None
            return "upload.multipart_malformed", "The multipart form could not be read."
        values: list[bytes] = []  # every part's header values, parameters and payload, in order
        for part in message.iter_parts() if hasattr(message, "iter_parts") else []:
            verdict = _check_part(part, self._limits)
            if verdict is not None:
                return verdict
            values += _part_header_strings(part)
            payload = part.get_payload(decode=True)
            values.append(payload if isinstance(payload, bytes) else b"")
        hit = encoded.find_encoded_split(values, self._limits.encoded_min_upload)
        if hit is not None:
            return "upload.encoded_blob", f"The form fields together carry {hit.describe()}: an encoded file."
        return None


def _is_markup_document(raw: bytes) -> bool:
    head = raw[:256].lstrip().lower()
    return head.startswith(tuple(m.encode() for m in _MARKUP_DOCUMENT)) or (
        _ELEMENT_START.match(head) is not None and b"</" in raw and raw.rstrip().endswith(b">")
    )


def form_strings(req: http.Request) -> list[bytes]:
    """Every name and value of a URL-encoded form, in order (name, value, name, value, ...):
    names carry data as well as values do, and so does every field of a repeated name
    (``urlencoded_form.values()`` gives only the first of each)."""
    out: list[bytes] = []
    for name, value in req.urlencoded_form.fields:
        out.append(name.encode("utf-8", "surrogateescape"))
        out.append(value.encode("utf-8", "surrogateescape"))
    return out


def _check_fields(values: list[bytes], threshold: int, max_field: int,
                  what: str = "A form field's name or value") -> Verdict | None:
    """Form fields (names and values): each is short text without a document in it; no
    encoded file in one of them or in all of them together."""
    for value in values:
        if len(value) > max_field:
            return "upload.field_too_large", f"{what} of {len(value)} bytes is over the {max_field}-byte limit."
        if not sniff.is_textual_throughout(value):
            return "upload.binary_body", f"{what} carries binary data."
        if _is_markup_document(value):
            return "upload.document_as_text", f"{what} carries a markup (XML/HTML/SVG) document."
        job = sniff.job_or_document_kind(value, anywhere=True)
        if job is not None:
            return f"upload.sniffed_{job}", f"{what} carries a {job} document or print job."
        if len(value) >= threshold // 2:
            hit = encoded.find_encoded(value, threshold, strict=True)
            if hit is not None:
                return "upload.encoded_blob", f"{what} carries {hit.describe()}: an encoded file."
    hit = encoded.find_encoded_split(values, threshold) or encoded.any_alphabet(b"".join(values), max(1024, 4 * threshold))
    if hit is not None:
        return "upload.encoded_blob", f"The form's names and values together carry {hit.describe()}: an encoded file."
    return None


_BLANK = b" \t\r\n"
_PART_HEADERS = frozenset({"content-disposition", "content-type"})  # all a browser sends (RFC 7578)
_LINE_END = re.compile(rb"\r?\n")  # after a delimiter: no transport padding (a browser sends none)
_MAX_BREAKS = 4  # before the first delimiter and after the last: at most two line breaks ("\r\n\r\n")
_PARAM = re.compile(rb';\s*[^=;\s]+\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))')  # a header parameter's value
_OUTSIDE_PARTS = ("upload.multipart_outside_parts",
                  "The multipart form carries data before its first boundary or after its closing one "
                  "(a browser never sends any there): it is refused.")


def _check_outside_parts(message: Message, raw: bytes, delimiter: bytes) -> Verdict | None:
    """Nothing but a line break or two before the first boundary line and after the closing one, and
    nothing after a boundary on its line: a browser never sends a preamble, an epilogue or
    padding, and no part's checks see them. Judged on the
    raw body (the first delimiter line, the first closing one after any line break) and on what
    the parser kept aside, so a parser that cuts the body elsewhere finds nothing there either."""
    first = raw.find(delimiter)
    if first < 0:
        return "upload.multipart_malformed", "The multipart form has no boundary line."
    closing = delimiter + b"--"
    if raw.startswith(closing, first):  # a form without fields: the closing line only
        after = first + len(closing)
    else:
        found = re.compile(rb"[\r\n]" + re.escape(closing)).search(raw, first)
        if found is None:
            return "upload.multipart_malformed", "The multipart form has no closing boundary."
        after = found.end()
        if not _LINE_END.match(raw, first + len(delimiter)):  # "--boundaryXYZ" is not a delimiter
            return _OUTSIDE_PARTS
    aside = [message.preamble or "", message.epilogue or ""]
    if not (_line_breaks_only(raw[:first]) and _line_breaks_only(raw[after:])) or any(text.strip() for text in aside):
        return _OUTSIDE_PARTS  # spaces and tabs too: a file in bits of whitespace (tester xfer2)
    for found in re.finditer(rb"(?:\A|(?<=\n))" + re.escape(delimiter), raw):  # each ends its line, or the form
        end = found.end()
        if not (_LINE_END.match(raw, end) or raw.startswith(b"--", end)):
            return _OUTSIDE_PARTS
    return None


def _line_breaks_only(outside: bytes) -> bool:
    return len(outside) <= _MAX_BREAKS and not outside.strip(b"\r\n")


def _check_part_headers(part: Message, limits: ProxyLimits) -> Verdict | None:
    """Only the headers a browser sends in a part, their values (the field's name among them)
    checked like fields."""
    extra = sorted({name.lower() for name, _ in part.raw_items()} - _PART_HEADERS)
    if extra:
        return ("upload.multipart_header",
                f"A form part carries the header {extra[0]!r}; a browser sends only Content-Disposition and "
                "Content-Type there.")
    return _check_fields(_part_header_strings(part), limits.encoded_min_upload, limits.max_text_body,
                         "A form part's name or header")


def _part_header_strings(part: Message) -> list[bytes]:
    """A part's header values, each followed by its parameters' values (the field's name among
    them), as sent: a run split over parts' names joins up like one split over their values."""
    out: list[bytes] = []
    for _, value in part.raw_items():
        raw = value.encode("utf-8", "surrogateescape")
        out.append(raw)
        out += [m.group(1) if m.group(1) is not None else m.group(2) for m in _PARAM.finditer(raw)]
    return out


def json_strings(value: object, out: list[bytes], limit: int = 10_000) -> None:
    """Every string (keys and values) in parsed JSON, at most ``limit`` of them."""
    if len(out) >= limit:
        return
    if isinstance(value, str):
        out.append(value.encode("utf-8", "surrogateescape"))
    elif isinstance(value, dict):
        for k, v in value.items():
            out.append(str(k).encode("utf-8", "surrogateescape"))
            json_strings(v, out, limit)
    elif isinstance(value, list):
        for v in value:
            json_strings(v, out, limit)


def _check_json_strings(raw: bytes, threshold: int) -> Verdict | None:
    """JSON string values: an encoded file split over many strings, or a markup document in one."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None  # not JSON after all: the body rules judge it as text
    strings: list[bytes] = []
    json_strings(data, strings)
    for value in strings:
        if _is_markup_document(value):
            return "upload.document_as_text", "A JSON value carries a markup (XML/HTML/SVG) document."
    hit = encoded.find_encoded_split(strings, threshold)
    if hit is not None:
        return "upload.encoded_blob", f"The JSON values together carry {hit.describe()}: an encoded file."
    return None


def _check_part(part: Message, limits: ProxyLimits) -> tuple[str, str] | None:
    disposition = str(part.get("content-disposition", ""))
    lowered = disposition.lower()
    if "filename" in lowered or part.get_filename() is not None:
        return "upload.multipart_file", "The form carries a file; file uploads are not allowed."
    if part.is_multipart():
        return "upload.multipart_file", "Nested multipart parts are not allowed."
    ptype = part.get_content_type()
    if "content-type" in part and ptype not in ("text/plain",):
        return "upload.multipart_file", f"A form part of type {ptype} is treated as a file."
    verdict = _check_part_headers(part, limits)
    if verdict is not None:
        return verdict
    payload = part.get_payload(decode=True)
    body = payload if isinstance(payload, bytes) else b""
    if sniff.transfer_kind(body) is not None or sniff.embedded_kind(body) is not None:
        return "upload.multipart_file", "A form field carries an archive or document."
    job = sniff.job_or_document_kind(body, anywhere=True)
    if job is not None:
        return "upload.multipart_file", f"A form field carries a {job} document or print job."
    return _check_fields([body], limits.encoded_min_upload, limits.max_text_body)
