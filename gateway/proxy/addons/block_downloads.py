"""Response allowlist (fail closed): only page resources reach the technician.

Allowed: HTML, CSS, JavaScript (page limit), raster images that are only an
image (image limit), SVG that is a plain image, web fonts the device's own CSS
asked for (font limit), small JSON/XML, tiny plain text. Blocked: any
``Content-Disposition`` naming an attachment or file, CSV, archives, PDFs,
firmware, octet-stream; any body that sniffs as an archive or document whatever
its declared type, with the signature at any offset (a ZIP after a PNG or a
font, an archive inside an image); text with binary bytes anywhere, a document
or print job at a line start, or an encoded file (base64, hex, ...) in it.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
from collections import OrderedDict
from collections.abc import Awaitable
from typing import NamedTuple

from mitmproxy import http

from gateway.proxy import encoded, font_check, font_refs, pages, sniff
from gateway.proxy.addons.block_uploads import JSON_TYPES, is_json_or_xml, json_strings, media_type
from gateway.proxy.addons.security_headers import REMOVE as REPLACED_HEADERS
from gateway.proxy.check_workers import (
    CPU_S,
    OFFLOAD_MIN_BYTES,
    WALL_S,
    CheckOverran,
    CheckUnavailable,
    CheckWorkers,
    body_workers,
    font_workers,
    parse_timeout,
)
from gateway.proxy.decision import FlowDecision, is_generated, route_of
from gateway.proxy.font_refs import FontReferences
from gateway.proxy.limits import ProxyLimits
from gateway.proxy.response_headers import HeaderTally, header_finding
from gateway.proxy.routes import RouteTable
from gateway.proxy.svg_check import svg_problem
from gateway.proxy.vendor_profiles import VendorEndpoints

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
CSS_TYPES = frozenset({"text/css"})
JS_TYPES = frozenset(
    {"text/javascript", "application/javascript", "application/x-javascript",
     "application/ecmascript", "text/ecmascript", "text/jscript"}
)
FONT_TYPES = frozenset(
    {"application/font-woff", "application/font-woff2", "application/x-font-woff",
     "application/x-font-ttf", "application/x-font-otf", "application/font-sfnt",
     "application/vnd.ms-fontobject", "application/x-font-truetype", "application/x-font-opentype"}
)
SVG_TYPE = "image/svg+xml"
MAX_PLAIN_TEXT = 16 * 1024
NO_BODY_STATUSES = frozenset({101, 204, 304})
# what SecurityHeaders removes and sets itself: never passed on, so not checked
_NOT_PASSED_ON = frozenset(name.encode() for name in REPLACED_HEADERS)
Verdict = tuple[str, str, int]
FONT = object()  # the body is a font: whether it may pass depends on the request and session
PARSE_FONT = object()  # check(): the font's structure is not known yet (parsed off the event loop)
CHECK_BODY = object()  # check(): a large body not judged before (checked in a worker process)
_FONT_STRUCTURE = "\x00font-structure"  # BodyVerdicts key: what parsing the font found
# a request the browser makes to show a document: a font must never be the answer (Chromium
# saves a font it navigates to; the CSP sandbox does not apply to a non-document)
_NAVIGATION_DESTS = frozenset({"document", "iframe", "frame", "embed", "object", "fencedframe"})


class BodyVerdicts:
    """What the body checks decided about recent bodies (with their declared type and the limits
    they were checked under): an EWS serves the same status page, style sheet and script again
    and again, and a repeat costs a comparison or a digest instead of the sniffing and the
    encoded-payload scan. Bodies under ``min_size`` are remembered at the exact level only (kept
    as they are; a 100-byte page costs about 8 us afresh, 1 us remembered: no digest, which would
    cost more than the comparison); a 3 KB style sheet or script costs about 180 us afresh and 1-2 us
    remembered, so the typical EWS assets are remembered too.

    Two levels, both exact: the last bodies up to ``exact_bytes`` in all are kept as they are and a
    repeat is found by its length, type, limits and first and last bytes and then compared in full
    (one memcmp: ~5 us per 100 KB); older ones are remembered by an HMAC-SHA256 of the body under a
    key secret to the process (~60 us per 100 KB; nobody can make a body collide with one already
    judged). A body that differs in any byte is judged afresh."""

    MISSING = object()
    _EDGE = 64

    def __init__(self, entries: int = 512, min_size: int = 1024, exact_bytes: int = 8 * 1024 * 1024) -> None:
        self._key = secrets.token_bytes(32)
        self._entries = entries
        self._exact_entries = entries * 8  # many tiny bodies: their keys, not their bytes, fill memory
        self._min_size = min_size
        self._exact_limit = exact_bytes if entries else 0
        self._exact_size = 0
        self._exact: OrderedDict[tuple[int, bytes, bytes, str, ProxyLimits], tuple[bytes, Verdict | object | None]]
        self._exact = OrderedDict()
        self._seen: OrderedDict[tuple[bytes, str, ProxyLimits], Verdict | object | None] = OrderedDict()

    def _exact_key(self, body: bytes, mtype: str, lim: ProxyLimits) -> tuple[int, bytes, bytes, str, ProxyLimits]:
        return len(body), body[: self._EDGE], body[-self._EDGE :], mtype, lim

    def lookup(self, body: bytes, mtype: str, lim: ProxyLimits) -> Verdict | object | None:
        """The verdict remembered for exactly this body, type and limits, or ``MISSING``."""
        if not self._entries:
            return self.MISSING
        near = self._exact.get(self._exact_key(body, mtype, lim))
        if near is not None and near[0] == body:
            return near[1]
        if len(body) < self._min_size:  # never kept by digest
            return self.MISSING
        digest = self._digest(body, mtype, lim)
        if digest not in self._seen:
            return self.MISSING
        self._seen.move_to_end(digest)
        return self._seen[digest]

    def put(self, body: bytes, mtype: str, lim: ProxyLimits, verdict: Verdict | object | None) -> None:
        if not self._entries:
            return
        if len(body) >= self._min_size:
            digest = self._digest(body, mtype, lim)
            self._seen[digest] = verdict
            while len(self._seen) > self._entries:
                self._seen.popitem(last=False)
        if len(body) > self._exact_limit // 8:
            return  # kept by digest only: a few large bodies would push out the many small ones
        ekey = self._exact_key(body, mtype, lim)
        old = self._exact.pop(ekey, None)
        if old is not None:
            self._exact_size -= len(old[0])
        self._exact[ekey] = (body, verdict)
        self._exact_size += len(body)
        while self._exact_size > self._exact_limit or len(self._exact) > self._exact_entries:
            _k, (gone, _v) = self._exact.popitem(last=False)
            self._exact_size -= len(gone)

    def _digest(self, body: bytes, mtype: str, lim: ProxyLimits) -> tuple[bytes, str, ProxyLimits]:
        return hmac.digest(self._key, body, "sha256"), mtype, lim


_FONT_IN_WORKER = "font"  # FONT as it comes back from the worker process (its answer is JSON)
_worker_checker: BlockDownloads | None = None


def body_verdict_in_worker(mtype: str, body: bytes, lim: ProxyLimits) -> tuple[Verdict | str | None, bool]:
    """In a check worker process: what the body alone decides (``_body_verdict``) within the CPU
    budget and the wall-clock bound, and whether the verdict may be remembered (a wall-clock
    refusal says more about the host's load than about the body)."""
    global _worker_checker
    if _worker_checker is None:
        _worker_checker = BlockDownloads(lim)
    try:
        with encoded.analysis_budget(CPU_S, wall_seconds=WALL_S):
            verdict = _worker_checker._body_verdict(mtype, body, lim)
    except encoded.TooComplexToCheck as exc:
        return ("download.too_complex", f"The response is refused, not let through unchecked: {exc}.",
                len(body)), not exc.wall
    if verdict is FONT:
        return _FONT_IN_WORKER, True
    return verdict, True  # type: ignore[return-value]


class _Heads(NamedTuple):
    """What ``check`` and ``_apply`` read from a response's header fields (one pass over them)."""

    refusal: tuple[str, str] | None  # a file offered (Content-Disposition) or ``header_finding``
    content_type: str  # as ``headers.get("content-type", "")``: the values joined with ", "
    mtype: str  # ``media_type(content_type)``
    typed: bool  # a Content-Type field is there (``"content-type" in headers``)
    encoded: bool  # a Content-Encoding field is there: the body is read through ``get_content``


_HEADS_MEMO = 256  # header field sets remembered per addon (an EWS sends the same ones again)
_HEADS_MEMO_BYTES = 16 * 1024  # ... each at most this large (the memo's memory stays bounded)


def _native(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")  # as mitmproxy's Headers give a value


def _read_heads(fields: tuple[tuple[bytes, bytes], ...]) -> tuple[_Heads, int]:
    """The header facts of ``fields`` (what ``headers.get_all``, ``headers.get`` and ``in`` would
    give, found in one pass) and the fields' size."""
    dispositions: list[bytes] = []
    types: list[bytes] = []
    encoded_body = False
    size = 0
    for raw_name, value in fields:
        size += len(raw_name) + len(value)
        name = raw_name.lower()
        if name == b"content-disposition":
            dispositions.append(value)
        elif name == b"content-type":
            types.append(value)
        elif name == b"content-encoding":
            encoded_body = True
    refusal: tuple[str, str] | None = None
    if any(_disposition_is_file(_native(v)) for v in dispositions):
        refusal = "download.attachment", "The device offered a file download."
    else:
        refusal = header_finding(fields, _NOT_PASSED_ON)
    content_type = ", ".join(_native(v) for v in types)
    return _Heads(refusal, content_type, media_type(content_type), bool(types), encoded_body), size


def _disposition_is_file(value: str) -> bool:
    lowered = value.lower()
    return "attachment" in lowered or "filename" in lowered or not lowered.strip().startswith("inline")


def _split_over_json_strings(body: bytes, threshold: int) -> encoded.EncodedHit | None:
    """An encoded file cut into many JSON strings (``["AAAA...", "BBBB..."]``)."""
    if body.count(b'"') < 8:
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    strings: list[bytes] = []
    json_strings(data, strings)
    return encoded.find_encoded_split(strings, threshold, tokens_apart=True)


def _image_is_harmless(data: bytes) -> bool:
    """A ``data:`` URI a page may show: an image and nothing else, or a plain SVG."""
    if sniff.clean_image_kind(data) is not None:
        return True
    return sniff.is_textual_throughout(data) and svg_problem(data) is None


class BlockDownloads:
    def __init__(self, limits: ProxyLimits, routes: RouteTable | None = None,
                 vendors: VendorEndpoints | None = None, *, trust_font_dest: bool = False) -> None:
        self._limits = limits
        self._vendors = vendors
        # proxy workers: another process may have served the CSS naming a font (see _check_font)
        self._trust_font_dest = trust_font_dest
        self.font_parser = font_workers()  # fonts parsed in worker processes (issue 21 round 5 F4)
        self._by_vendor: dict[str, ProxyLimits] = {}
        self.fonts = FontReferences()
        self.verdicts = BodyVerdicts()
        # header facts by the exact header fields: a pure function of them, so a repeat (an EWS
        # sends the same headers again, the Date changes once a second) is one dict lookup
        self._heads: dict[tuple[tuple[bytes, bytes], ...], _Heads] = {}
        # heavy body checks off the event loop, one per session at a time (issue 21 round 5 F5);
        # None: every body inline (unit tests of the checks, the cost measurements)
        self.check_pool: CheckWorkers | None = body_workers()
        self._prestart: asyncio.Task[None] | None = None  # running(): a body worker started ahead
        # new header characters passed on per session, over all its responses (round 5 F3)
        self.header_tally = HeaderTally()
        if routes is not None:
            routes.on_remove(lambda session_id, _reason: self.fonts.forget(session_id))
            routes.on_remove(lambda session_id, _reason: self.header_tally.forget(session_id))

    def _limits_for(self, vendor: str) -> ProxyLimits:
        if self._vendors is None or not vendor:
            return self._limits
        found = self._by_vendor.get(vendor)
        if found is None:
            found = self._by_vendor[vendor] = self._vendors.limits_for(vendor, self._limits)
        return found

    def running(self) -> None:
        """The proxy is up: one body check worker is started ahead of the first large page."""
        if self.check_pool is not None:
            self._prestart = asyncio.get_running_loop().create_task(self.check_pool.prestart())

    def done(self) -> None:
        """The proxy stops: its check worker processes are killed (they would live on until the
        proxy's process exits, or a parse in them ended)."""
        self.font_parser.close()
        if self.check_pool is not None:
            self.check_pool.close()

    def _heads_of(self, resp: http.Response) -> _Heads:
        fields = resp.headers.fields
        found = self._heads.get(fields)
        if found is None:
            found, size = _read_heads(fields)
            if size <= _HEADS_MEMO_BYTES:
                if len(self._heads) >= _HEADS_MEMO:
                    self._heads.pop(next(iter(self._heads)))
                self._heads[fields] = found
        return found

    def response(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        if is_generated(flow) or flow.response is None:
            return None
        route = route_of(flow)
        session_id = route.session_id if route else ""
        lim = self._limits_for(route.vendor if route else "")
        verdict = self.check(flow.request, flow.response, session_id=session_id, limits=lim,
                             offload=self.check_pool is not None)
        if verdict is CHECK_BODY:  # awaited by mitmproxy (a coroutine only here and for fonts)
            return self._check_body_then(flow, session_id, lim)
        if verdict is PARSE_FONT:
            return self._parse_font_then_check(flow, session_id, lim)
        self._apply(flow, verdict)  # type: ignore[arg-type]
        return None

    async def _check_body_then(self, flow: http.HTTPFlow, session_id: str, lim: ProxyLimits) -> None:
        """A large body not judged before: its checks run in a worker process (``check_pool``), so
        other sessions' requests go on meanwhile; the rest of ``check`` then runs here."""
        assert flow.response is not None and self.check_pool is not None
        body = flow.response.get_content(strict=False) or b""
        mtype = self._heads_of(flow.response).mtype  # what check() judged it as
        async with self.check_pool.session_turn(session_id):
            # the same body, fetched again by this session while it waited, was judged meanwhile
            judged = self.verdicts.lookup(body, mtype, lim)
            if judged is BodyVerdicts.MISSING:
                judged = await self._judge_in_worker(body, mtype, lim)
        final = self.check(flow.request, flow.response, session_id=session_id, limits=lim, body_verdict=judged)
        if final is PARSE_FONT:
            await self._parse_font_then_check(flow, session_id, lim)
            return
        self._apply(flow, final)  # type: ignore[arg-type]

    async def _judge_in_worker(self, body: bytes, mtype: str, lim: ProxyLimits) -> Verdict | object | None:
        """What the body alone decides, from a check worker (call it in the session's turn)."""
        assert self.check_pool is not None
        try:
            verdict, keep = await self.check_pool.call(mtype, body, lim)
        except CheckUnavailable as exc:  # fail closed, not remembered (the host, not the body)
            verdict, keep = ("download.too_complex",
                             f"The response is refused, not let through unchecked: {exc}.", len(body)), False
        judged: Verdict | object | None = FONT if verdict == _FONT_IN_WORKER else verdict
        if keep:
            self.verdicts.put(body, mtype, lim, judged)
        return judged

    async def _parse_font_then_check(self, flow: http.HTTPFlow, session_id: str, lim: ProxyLimits) -> None:
        """A font not seen before, that this request may have, is parsed (fontTools, pure Python:
        0.05-0.6 s per 100 KB for a real web font) in a worker process with a time bound, at most
        one at a time per session (``check_workers``), so other sessions' requests go on meanwhile."""
        assert flow.response is not None
        body = flow.response.get_content(strict=False) or b""
        key = font_check.cache_form(body)
        # what a parse found (a problem, none, or its CPU bound used up) is remembered for every
        # session; that it could not finish otherwise (the wall-clock cap of a starved worker, a
        # worker that died) says more about the host than the font: remembered for this session
        # only (it does not parse the same font again and again), never refusing the font to
        # the others (tester a6r)
        this_session = _FONT_STRUCTURE + session_id
        async with self.font_parser.session_turn(session_id):
            # a font of this session parsed while this one waited may have been this one
            structure = self.verdicts.lookup(key, _FONT_STRUCTURE, lim)
            if structure is BodyVerdicts.MISSING:
                structure = self.verdicts.lookup(key, this_session, lim)
            if structure is BodyVerdicts.MISSING:
                structure, finished = await self._parse_font(body)
                self.verdicts.put(key, _FONT_STRUCTURE if finished else this_session, lim, structure)
        verdict = self.check(flow.request, flow.response, session_id=session_id, limits=lim,
                             font_structure=structure)
        self._apply(flow, verdict)  # type: ignore[arg-type]

    async def _parse_font(self, body: bytes) -> tuple[Verdict | None, bool]:
        """The font's structure verdict from a worker, and whether the parse finished (call it in
        the session's turn)."""
        try:
            problem = await self.font_parser.call(body, sniff.clean_font_kind(body))
        except CheckOverran as exc:  # over its CPU bound: the font's doing, remembered for every session
            return ("download.too_complex", "The font is refused, not let through unchecked: it takes too "
                    f"long to check (over {parse_timeout(len(body)):.1f} s).", len(body)), exc.by_cpu
        except CheckUnavailable as exc:  # refused, not passed (the worker died, did not start)
            problem, finished = f"a font whose check did not finish ({exc})", False
        else:
            finished = True
        if problem is None:
            return None, finished
        return ("download.not_a_font", f"The response claims to be a font but is {problem}.", len(body)), finished

    def _apply(self, flow: http.HTTPFlow, verdict: Verdict | None) -> None:
        assert flow.response is not None
        heads = self._heads_of(flow.response)
        if verdict is None:  # once per response: what its headers pass on is added to the session's tally
            route = route_of(flow)
            finding = self.header_tally.charge(route.session_id if route else "", flow.response.headers.fields,
                                               _NOT_PASSED_ON)
            if finding is not None:
                verdict = finding[0], finding[1], len(flow.response.raw_content or b"")
        if verdict is None:
            self._declare_type(flow.response, heads)
            return
        rule, reason, size = verdict
        pages.block(flow, FlowDecision(True, rule, reason, "response", heads.content_type, size))

    @staticmethod
    def _declare_type(resp: http.Response, heads: _Heads) -> None:
        """Untyped bodies get the type they were checked as (the browser is told not to sniff)."""
        if heads.typed or not resp.raw_content:
            return
        body = resp.get_content(strict=False) or b""
        resp.headers["content-type"] = "text/html" if sniff.looks_like_html(body) else "text/plain"

    def check(self, req: http.Request, resp: http.Response, *, session_id: str = "",
              limits: ProxyLimits | None = None,
              font_structure: Verdict | object | None = BodyVerdicts.MISSING,
              body_verdict: Verdict | object | None = BodyVerdicts.MISSING,
              offload: bool = False) -> Verdict | object | None:
        """The refusal for this response, None, ``PARSE_FONT`` (a font whose structure must be
        parsed first: ``response`` does that and asks again with ``font_structure``) or, with
        ``offload``, ``CHECK_BODY`` (a body of ``OFFLOAD_MIN_BYTES`` or more not judged before:
        ``response`` has it checked in a worker process and asks again with ``body_verdict``)."""
        lim = limits or self._limits
        heads = self._heads_of(resp)
        # no Content-Encoding field: get_content would return raw_content as it is
        body = (resp.get_content(strict=False) if heads.encoded else resp.raw_content) or b""
        size = len(body)
        if heads.refusal is not None:
            return heads.refusal[0], heads.refusal[1], size
        if resp.status_code in NO_BODY_STATUSES or req.method.upper() == "HEAD":
            return None
        if not body:
            return None
        mtype = heads.mtype
        verdict = body_verdict
        if verdict is BodyVerdicts.MISSING:
            verdict = self.verdicts.lookup(body, mtype, lim)
        if verdict is BodyVerdicts.MISSING and offload and size >= OFFLOAD_MIN_BYTES:
            return CHECK_BODY
        if verdict is BodyVerdicts.MISSING:
            try:
                with encoded.analysis_budget():
                    verdict = self._body_verdict(mtype, body, lim)
            except encoded.TooComplexToCheck as exc:  # crafted to stall the proxy: fail closed
                verdict = "download.too_complex", f"The response is refused, not let through unchecked: {exc}.", size
            self.verdicts.put(body, mtype, lim, verdict)
        if verdict is FONT:
            if size > lim.max_font_body:  # never parsed
                return "download.too_large", f"A font of {size} bytes is over the {lim.max_font_body}-byte limit.", size
            if sniff.clean_font_kind(body) is None:
                return "download.not_a_font", "The response claims to be a font but is not only one.", size
            # the request rules first (navigation, named by the device's CSS): a font this request
            # may not have is refused without the cost of parsing it
            refused = self._check_font(req, body, session_id)
            if refused is not None:
                return refused
            if font_structure is BodyVerdicts.MISSING:
                font_structure = self.verdicts.lookup(font_check.cache_form(body), _FONT_STRUCTURE, lim)
                if font_structure is BodyVerdicts.MISSING:
                    return PARSE_FONT
            return font_structure
        # names_fonts first: no @font-face, nothing recorded, and req.url is costly to build
        if (verdict is None and session_id and (mtype in CSS_TYPES or mtype in HTML_TYPES)
                and font_refs.names_fonts(body)):
            self.fonts.record(session_id, body, req.url)
        return verdict

    def _body_verdict(self, mtype: str, body: bytes, lim: ProxyLimits) -> Verdict | object | None:
        """What the body alone decides (no request, no session): a refusal, None, or ``FONT``."""
        size = len(body)
        kind = sniff.transfer_kind(body)
        if kind is not None:
            return f"download.sniffed_{kind}", f"The response is a {kind} file, whatever its declared type.", size
        if mtype == SVG_TYPE:
            return self._check_svg(body, lim)
        if mtype.startswith("image/"):
            return self._check_image(body, lim)
        if mtype.startswith("font/") or mtype in FONT_TYPES or sniff.font_kind(body) is not None:
            return FONT
        page = mtype in HTML_TYPES or mtype in CSS_TYPES or mtype in JS_TYPES or mtype == ""
        if not sniff.is_textual_throughout(body, every_control=not page):
            inner = sniff.embedded_kind(body)
            if inner is not None:
                return f"download.sniffed_{inner}", f"The response contains a {inner} file.", size
            return "download.binary", f"The response is binary data (declared {mtype or 'no type'}).", size
        verdict = self._check_text_type(mtype, body, lim)
        if verdict is not None:
            return verdict
        return self._check_text_content(mtype, body, lim)

    @staticmethod
    def _check_image(body: bytes, lim: ProxyLimits) -> Verdict | None:
        size = len(body)
        if sniff.image_kind(body) is None:
            return "download.not_an_image", "The response claims to be an image but is not one.", size
        if sniff.clean_image_kind(body) is None:
            return ("download.image_carries_file",
                    "The image carries more than a picture (data after its end, or an archive inside it).", size)
        if size > lim.max_image_body:
            return "download.too_large", f"An image of {size} bytes is over the {lim.max_image_body}-byte limit.", size
        return None

    @staticmethod
    def _check_svg(body: bytes, lim: ProxyLimits) -> Verdict | None:
        size = len(body)
        if not sniff.is_textual_throughout(body):
            return "download.not_an_image", "The response claims to be an SVG image but is binary data.", size
        if size > lim.max_svg_body:
            return "download.too_large", f"An SVG image of {size} bytes is over the {lim.max_svg_body}-byte limit.", size
        problem = svg_problem(body)
        if problem is not None:
            return "download.svg_active", f"The SVG image is refused: {problem}.", size
        hit = (encoded.find_encoded(body, lim.encoded_min_upload, allow_data=_image_is_harmless)
               or encoded.encoded_total(body, lim.encoded_allowance_upload, allow_data=_image_is_harmless)
               or encoded.any_alphabet(body, lim.encoded_allowance_upload))
        if hit is not None:
            return "download.encoded_blob", f"The SVG image carries {hit.describe()}: an encoded file.", size
        return None

    def _check_font(self, req: http.Request, body: bytes, session_id: str) -> Verdict | None:
        """Whether this request may have a font (checked before its structure: cheap)."""
        size = len(body)
        dest = req.headers.get("sec-fetch-dest", "").lower()
        if req.headers.get("sec-fetch-mode", "").lower() == "navigate" or dest in _NAVIGATION_DESTS:
            return ("download.font_navigation",
                    "A font is not a page: opened as one, the browser would save it as a file.", size)
        path = req.path.split("?", 1)[0]
        if self.fonts.referenced(session_id, path):
            return None
        # Sec-Fetch-Dest: font alone does not do (curl sets any header). With proxy workers the
        # style sheet naming the font may have gone through another process: there the browser's
        # font loader (Sec-Fetch-Dest: font, Sec-Fetch-Mode: cors) is believed, and what it gets
        # is a font that parsed as one (no navigation: refused above).
        if (self._trust_font_dest and dest == "font"
                and req.headers.get("sec-fetch-mode", "").lower() == "cors"):
            return None
        return "download.font_not_referenced", "The device's own style sheets do not use this font.", size

    @staticmethod
    def _check_text_type(mtype: str, body: bytes, lim: ProxyLimits) -> Verdict | None:
        size = len(body)
        if (mtype in HTML_TYPES or mtype in ("text/plain", "")) and sniff.looks_like_csv(body):
            return "download.table_export", "The response is a table export (CSV).", size
        if mtype in HTML_TYPES or mtype in CSS_TYPES or mtype in JS_TYPES:
            if size > lim.max_page_body:
                return "download.too_large", f"A page resource of {size} bytes is over the {lim.max_page_body}-byte limit.", size
            return None
        if is_json_or_xml(mtype):
            if size > lim.max_data_body:
                return "download.too_large", f"JSON/XML of {size} bytes is over the {lim.max_data_body}-byte limit.", size
            return None
        if mtype == "" and sniff.looks_like_html(body):
            if size > lim.max_page_body:
                return "download.too_large", f"A page of {size} bytes is over the {lim.max_page_body}-byte limit.", size
            return None
        if mtype in ("text/plain", ""):
            if size > MAX_PLAIN_TEXT:
                return "download.too_large", f"Plain text of {size} bytes is over the {MAX_PLAIN_TEXT}-byte limit.", size
            return None
        return "download.type", f"Responses of type {mtype} are not page resources.", size

    @staticmethod
    def _check_text_content(mtype: str, body: bytes, lim: ProxyLimits) -> Verdict | None:
        size = len(body)
        markup = mtype in HTML_TYPES or mtype in CSS_TYPES
        job = sniff.job_or_document_kind(body, anywhere=False, lines=not markup)
        if job is not None:
            return f"download.sniffed_{job}", f"The response carries a {job} document.", size
        hit = encoded.find_encoded(body, lim.encoded_min_download, allow_data=_image_is_harmless,
                                   byte_lists=not markup)
        if hit is None and (mtype in JSON_TYPES or mtype.endswith("+json")):
            hit = _split_over_json_strings(body, lim.encoded_min_download)
        if hit is None:  # pieces under the per-run threshold, summed over the body; any alphabet
            hit = (encoded.encoded_total(body, lim.encoded_allowance_download, allow_data=_image_is_harmless)
                   or encoded.any_alphabet(body, lim.encoded_allowance_download))
        if hit is not None:
            return "download.encoded_blob", f"The response carries {hit.describe()}: an encoded file.", size
        return None
