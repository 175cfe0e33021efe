"""Request allowlist (fail closed): no file ever travels from the technician to the device.

Allowed: GET/HEAD/OPTIONS without a body; POST with a small
``application/x-www-form-urlencoded``, ``text/plain``, JSON or XML body, or a
multipart form without any file part. Everything else is blocked.
"""

from __future__ import annotations

from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP

from mitmproxy import http

from gateway.proxy import pages, sniff
from gateway.proxy.decision import FlowDecision, already_answered
from gateway.proxy.limits import ProxyLimits

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
JSON_TYPES = frozenset({"application/json", "text/json"})
XML_TYPES = frozenset({"application/xml", "text/xml"})


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def is_json_or_xml(mtype: str) -> bool:
    return mtype in JSON_TYPES or mtype in XML_TYPES or mtype.endswith(("+json", "+xml"))


class BlockUploads:
    def __init__(self, limits: ProxyLimits) -> None:
        self._limits = limits

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        """A body declared larger than any allowed one is refused before it is read."""
        if already_answered(flow):
            return
        declared = flow.request.headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > self._limits.max_request_body:
            self._block(flow, ("upload.too_large",
                               f"A request body of {declared} bytes is over every allowed size."), int(declared))

    def request(self, flow: http.HTTPFlow) -> None:
        if already_answered(flow):
            return
        verdict = self.check(flow.request)
        if verdict is not None:
            self._block(flow, verdict, len(flow.request.raw_content or b""))

    @staticmethod
    def _block(flow: http.HTTPFlow, verdict: tuple[str, str], size: int) -> None:
        rule, reason = verdict
        pages.block(flow, FlowDecision(True, rule, reason, "request", flow.request.headers.get("content-type", ""), size))

    def check(self, req: http.Request) -> tuple[str, str] | None:
        method = req.method.upper()
        ctype = req.headers.get("content-type", "")
        mtype = media_type(ctype)
        raw = req.raw_content or b""
        if mtype == "application/ipp" or sniff.transfer_kind(raw) == "ipp":
            return "upload.ipp", "Print jobs (IPP) cannot be sent to the device remotely."
        if method not in SAFE_METHODS | {"POST"}:
            return "upload.method", f"The HTTP method {method} is not allowed (it can write files)."
        encoding = req.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            return "upload.encoded_body", "Compressed request bodies are not allowed."
        if method in SAFE_METHODS:
            if raw:
                return "upload.body_on_safe_method", f"A {method} request may not carry a body."
            return None
        if not raw:
            return None
        kind = sniff.transfer_kind(raw)
        if kind is not None:
            return f"upload.sniffed_{kind}", f"The request body is a {kind} file, whatever its declared type."
        if not sniff.is_textual(raw):
            return "upload.binary_body", "The request body is binary data."
        size = len(raw)
        if mtype == "application/x-www-form-urlencoded":
            if size > self._limits.max_form_body:
                return "upload.too_large", f"Form data of {size} bytes is over the {self._limits.max_form_body}-byte limit."
            if any(sniff.has_encoded_blob(v.encode()) for v in req.urlencoded_form.values()):
                return "upload.encoded_blob", "A form field carries an encoded file."
            return None
        if mtype == "text/plain" or mtype == "":
            if size > self._limits.max_text_body:
                return "upload.too_large", f"Text of {size} bytes is over the {self._limits.max_text_body}-byte limit."
        elif is_json_or_xml(mtype):
            if size > self._limits.max_json_body:
                return "upload.too_large", f"JSON/XML of {size} bytes is over the {self._limits.max_json_body}-byte limit."
        elif mtype.startswith("multipart/"):
            return self._check_multipart(ctype, raw)
        else:
            return "upload.type", f"Request bodies of type {mtype or 'unknown'} are not allowed."
        if sniff.has_encoded_blob(raw):
            return "upload.encoded_blob", "The request body carries an encoded file (a long base64 run)."
        return None

    def _check_multipart(self, ctype: str, raw: bytes) -> tuple[str, str] | None:
        if len(raw) > self._limits.max_form_body:
            return "upload.too_large", f"Form data of {len(raw)} bytes is over the {self._limits.max_form_body}-byte limit."
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + ctype.encode("latin-1", "replace") + b"\r\n\r\n" + raw
        )
        if not message.is_multipart():
            return "upload.multipart_malformed", "The multipart form could not be read."
        for part in message.iter_parts() if hasattr(message, "iter_parts") else []:
            verdict = _check_part(part)
            if verdict is not None:
                return verdict
        return None


def _check_part(part: Message) -> tuple[str, str] | None:
    disposition = str(part.get("content-disposition", ""))
    lowered = disposition.lower()
    if "filename" in lowered or part.get_filename() is not None:
        return "upload.multipart_file", "The form carries a file; file uploads are not allowed."
    if part.is_multipart():
        return "upload.multipart_file", "Nested multipart parts are not allowed."
    ptype = part.get_content_type()
    if "content-type" in part and ptype not in ("text/plain",):
        return "upload.multipart_file", f"A form part of type {ptype} is treated as a file."
    payload = part.get_payload(decode=True)
    body = payload if isinstance(payload, bytes) else b""
    if sniff.transfer_kind(body) is not None or not sniff.is_textual(body):
        return "upload.multipart_file", "A form field carries binary data."
    if sniff.has_encoded_blob(body):
        return "upload.encoded_blob", "A form field carries an encoded file."
    return None
