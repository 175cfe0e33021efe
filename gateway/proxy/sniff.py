"""Content sniffing: what a body really is, whatever its declared type."""

from __future__ import annotations

import re

# (offset, magic, kind). Kinds that are documents/archives/executables are never allowed.
_TRANSFER_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"PK\x03\x04", "zip"),
    (0, b"PK\x05\x06", "zip"),
    (0, b"\x1f\x8b", "gzip"),
    (0, b"BZh", "bzip2"),
    (0, b"\xfd7zXZ\x00", "xz"),
    (0, b"7z\xbc\xaf\x27\x1c", "7z"),
    (0, b"Rar!\x1a\x07", "rar"),
    (0, b"\x28\xb5\x2f\xfd", "zstd"),
    (257, b"ustar", "tar"),
    (0, b"%PDF", "pdf"),
    (0, b"%!PS", "postscript"),
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "ole_document"),
    (0, b"{\\rtf", "rtf"),
    (0, b"\x7fELF", "elf"),
    (0, b"MZ", "exe"),
    (0, b"\x1b%-12345X", "pjl"),
    (0, b"@PJL", "pjl"),
    (0, b"\x1bE", "pcl"),
    (0, b"\x01\x01\x00\x02", "ipp"),
    (0, b"\x02\x00\x00\x02", "ipp"),
    (0, b"SQLite format 3\x00", "sqlite"),
    (0, b"-----BEGIN ", "pem"),
    (0, b"\x30\x82", "der"),
    (0, b"\xca\xfe\xba\xbe", "java_class"),
    (0, b"\x89HDF", "hdf"),
)

_IMAGE_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "png"),
    (0, b"GIF87a", "gif"),
    (0, b"GIF89a", "gif"),
    (0, b"\xff\xd8\xff", "jpeg"),
    (0, b"BM", "bmp"),
    (0, b"\x00\x00\x01\x00", "ico"),
    (0, b"RIFF", "webp"),  # checked further below
)

_FONT_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"wOFF", "woff"),
    (0, b"wOF2", "woff2"),
    (0, b"\x00\x01\x00\x00", "ttf"),
    (0, b"OTTO", "otf"),
    (0, b"true", "ttf"),
)


def _match(data: bytes, table: tuple[tuple[int, bytes, str], ...]) -> str | None:
    for offset, magic, kind in table:
        if data[offset : offset + len(magic)] == magic:
            return kind
    return None


# magics of two or three bytes also start ordinary text ("MZ-1234", "BZh..."): they count
# only when binary bytes follow
_SHORT_MAGIC_KINDS = frozenset({"exe", "bzip2", "pcl", "der", "gzip"})


def transfer_kind(data: bytes) -> str | None:
    """The archive/document/executable kind a body sniffs as, or None."""
    if _match(data, _IMAGE_MAGIC) or _match(data, _FONT_MAGIC):
        return None
    kind = _match(data, _TRANSFER_MAGIC)
    if kind in _SHORT_MAGIC_KINDS:
        head = data[:512]
        if len(head.translate(None, _CONTROLS)) == len(head):
            return None
    return kind


def image_kind(data: bytes) -> str | None:
    kind = _match(data, _IMAGE_MAGIC)
    if kind == "webp" and data[8:12] != b"WEBP":
        return None
    return kind


def font_kind(data: bytes) -> str | None:
    return _match(data, _FONT_MAGIC)


def is_textual(data: bytes) -> bool:
    """No NUL bytes and decodes as UTF-8 (or is plain 8-bit text without control bytes)."""
    head = data[:65536]
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a cut multi-byte sequence at the end
            controls = sum(1 for b in head if b < 9 or 13 < b < 32)
            return controls == 0 and not _looks_high_entropy(head)
    return True


def _looks_high_entropy(data: bytes) -> bool:
    high = sum(1 for b in data if b >= 0x80)
    return high > len(data) * 0.3


def looks_like_csv(data: bytes) -> bool:
    """A table export: several lines, no markup, the same separator count on each line."""
    head = data[:8192]
    if b"<" in head:
        return False
    text = head.decode("utf-8", "replace")
    lines = [line for line in text.splitlines() if line.strip()][:20]
    if len(lines) < 3:
        return False
    for sep in (",", ";", "\t", "|"):
        counts = {line.count(sep) for line in lines[:-1] or lines}
        if len(counts) == 1 and next(iter(counts)) >= 1:
            return True
    return False


_HTML_START = re.compile(rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body|title|meta|script|div|p|table)[\s>]", re.IGNORECASE | re.DOTALL)


def looks_like_html(data: bytes) -> bool:
    """Browser-style HTML detection for untyped responses (as old EWS and CUPS CGIs send)."""
    return _HTML_START.match(data[:1024]) is not None


# --- signatures anywhere in a body (polyglots, nested archives, jobs after a newline) ---

# Binary file signatures that mean "a file" at any offset. A ZIP local header must also
# look like one (a plausible "version needed" byte), so random image bytes rarely match.
_EMBEDDED_BINARY = re.compile(
    rb"PK\x03\x04[\x0a-\x3f]\x00|PK\x01\x02[\x00-\x3f][\x00-\x13]|PK\x05\x06\x00\x00"
    rb"|7z\xbc\xaf\x27\x1c|Rar!\x1a\x07|\xfd7zXZ\x00|\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
    rb"|SQLite format 3\x00|\x7fELF[\x01\x02][\x01\x02]|ustar(?:\x00|  )|\x1f\x8b\x08[\x00-\x1f]"
    rb"|BZh[1-9]1AY&SY|\x28\xb5\x2f\xfd|MSCF\x00\x00\x00\x00|%PDF-\d|\x1b%-12345X"
)
_EMBEDDED_KIND = (
    (b"PK", "zip"), (b"7z", "7z"), (b"Rar", "rar"), (b"\xfd7z", "xz"), (b"\xd0\xcf", "ole_document"),
    (b"SQLite", "sqlite"), (b"\x7fELF", "elf"), (b"ustar", "tar"), (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"), (b"\x28\xb5", "zstd"), (b"MSCF", "cab"), (b"%PDF", "pdf"), (b"\x1b%", "pjl"),
)
# Text documents and printer jobs: anywhere in a request, at a line start in a response
_JOB_SIGNATURES = rb"%!PS|%PDF-|@PJL|-----BEGIN |\x1b%-12345X|\x1bE|\{\\rtf"
_JOB_ANYWHERE = re.compile(_JOB_SIGNATURES)
_JOB_AT_LINE = re.compile(rb"\n[\r \t]?(?:" + _JOB_SIGNATURES + rb")")  # led by a literal: a fast scan
_JOB_KIND = (
    (b"%!", "postscript"), (b"%PDF", "pdf"), (b"@PJL", "pjl"), (b"\x1b%", "pjl"), (b"-----", "pem"),
    (b"\x1bE", "pcl"), (b"{", "rtf"),
)


# A PDF's or PostScript job's own structure: what makes "%PDF-" / "%!PS" inside text a document
# rather than words about one ("Printer says %PDF-1.4 error on job")
_PDF_STRUCTURE = re.compile(rb"\d+\s+\d+\s+obj\b|\bendobj\b|\bstream\r?\n|\bxref\b|\btrailer\b|\bstartxref\b"
                            rb"|%PDF-\d\.\d\r?\n%[\x80-\xff]{4}")  # the binary-marker comment line
_PS_OPERATORS = re.compile(
    rb"\b(?:showpage|findfont|scalefont|setfont|selectfont|moveto|lineto|rlineto|setpagedevice|newpath"
    rb"|closepath|stroke|setgray|setrgbcolor|gsave|grestore)\b|%%(?:BoundingBox|EndComments|Page|Creator|Pages):"
)


def _has_structure(data: bytes, kind: str) -> bool:
    """A signature in the middle of text counts only with its format's structure, or in binary."""
    if kind == "pdf":
        return _PDF_STRUCTURE.search(data) is not None or not is_textual_throughout(data)
    if kind == "postscript":
        return _PS_OPERATORS.search(data) is not None or not is_textual_throughout(data)
    return True


def embedded_kind(data: bytes) -> str | None:
    """The archive/document kind whose signature appears anywhere in ``data``, or None
    (``%PDF-`` inside text only with PDF structure: ``obj``, ``stream``, ``xref`` or binary)."""
    for m in _EMBEDDED_BINARY.finditer(data):
        found = m.group()
        kind = next(kind for prefix, kind in _EMBEDDED_KIND if found.startswith(prefix))
        if kind != "pdf" or _has_structure(data, kind):
            return kind
    return None


def job_or_document_kind(data: bytes, *, anywhere: bool, lines: bool = True) -> str | None:
    """A printer job (PostScript, PJL, PCL) or text document (PDF, PEM, RTF) signature:
    ``anywhere`` in the body, or else at its start or (``lines``) at a line start."""
    head = data[:64].lstrip()
    m = _JOB_ANYWHERE.match(head) if head.startswith((b"%!", b"%P", b"@", b"-", b"\x1b", b"{")) else None
    if m is not None:
        return _kind_of(m.group())
    if head.startswith(b"%!"):
        return "postscript"
    if lines:
        m = _JOB_AT_LINE.search(data)
        if m is not None:
            return _kind_of(m.group())
    if anywhere:
        # in the middle of a line: a PDF or PostScript signature needs the format's structure
        for m in _JOB_ANYWHERE.finditer(data):
            kind = _kind_of(m.group())
            if _has_structure(data, kind):
                return kind
    return None


def _kind_of(found: bytes) -> str:
    found = found.lstrip(b"\n \t\r")
    return next(kind for prefix, kind in _JOB_KIND if found.startswith(prefix))


_PNG_CHUNKS = frozenset(
    b"IHDR PLTE IDAT IEND tRNS cHRM gAMA iCCP sBIT sRGB cICP mDCv cLLi tEXt zTXt iTXt bKGD hIST pHYs sPLT "
    b"tIME eXIf acTL fcTL fdAT".split()
)


def _png_is_clean(data: bytes) -> bool:
    """Every chunk known, lengths consistent, nothing after IEND."""
    pos = 8
    n = len(data)
    while pos + 12 <= n:
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if kind not in _PNG_CHUNKS:
            return False
        pos += 12 + length
        if kind == b"IEND":
            return pos == n
    return False


def _jpeg_is_clean(data: bytes) -> bool:
    return data.rstrip(b"\x00").endswith(b"\xff\xd9")


def _gif_is_clean(data: bytes) -> bool:
    return data.rstrip(b"\x00").endswith(b";")


def _riff_is_clean(data: bytes) -> bool:
    return int.from_bytes(data[4:8], "little") + 8 in (len(data), len(data) - 1)


def _bmp_is_clean(data: bytes) -> bool:
    return int.from_bytes(data[2:6], "little") == len(data)


_IMAGE_STRUCTURE = {
    "png": _png_is_clean, "jpeg": _jpeg_is_clean, "gif": _gif_is_clean, "webp": _riff_is_clean,
    "bmp": _bmp_is_clean, "ico": lambda data: True,
}


def clean_image_kind(data: bytes) -> str | None:
    """The raster image kind of ``data`` when it is only that image: well formed, nothing
    appended (a ZIP after a PNG), no archive or document inside it; else None."""
    kind = image_kind(data)
    if kind is None or not _IMAGE_STRUCTURE[kind](data) or embedded_kind(data) is not None:
        return None
    return kind


def _sfnt_end(data: bytes, base: int = 0) -> int:
    """Where the last table of a TrueType/OpenType font ends (0 when the directory is bad)."""
    if len(data) < base + 12:
        return 0
    count = int.from_bytes(data[base + 4 : base + 6], "big")
    if not 0 < count <= 64 or len(data) < base + 12 + 16 * count:
        return 0
    end = 0
    for i in range(count):
        rec = base + 12 + 16 * i
        offset = int.from_bytes(data[rec + 8 : rec + 12], "big")
        length = int.from_bytes(data[rec + 12 : rec + 16], "big")
        end = max(end, offset + length)
    return end


def clean_font_kind(data: bytes) -> str | None:
    """The web font kind of ``data`` when it is only that font: the length its own header
    gives matches the body (nothing appended), no archive or document inside; else None."""
    kind = font_kind(data)
    if kind is None and len(data) > 36 and data[34:36] == b"\x4c\x50":
        kind = "eot"  # Embedded OpenType: magic 0x504C at offset 34
    if kind in ("woff", "woff2"):
        ok = int.from_bytes(data[8:12], "big") == len(data)
    elif kind in ("ttf", "otf"):
        end = _sfnt_end(data)
        ok = 0 < end <= len(data) <= end + 4
    elif kind == "eot":
        ok = int.from_bytes(data[0:4], "little") == len(data)
    else:
        return None
    if not ok or embedded_kind(data) is not None:
        return None
    return kind


def is_textual_throughout(data: bytes, *, every_control: bool = True) -> bool:
    """Text from the first byte to the last, UTF-8 or legacy 8-bit: no control byte besides
    white space (a ZIP or a 7-bit binary after some text fails). Without ``every_control``
    only NUL and ESC are looked for (every archive, document and job has one; a page of any
    size is checked in two memchr passes)."""
    if not every_control:
        binary = b"\x00" in data or b"\x1b" in data
    elif len(data) <= 4096:  # short values: one translate call beats a memchr per control byte
        binary = len(data.translate(None, _CONTROLS)) != len(data)
    else:
        binary = any(c in data for c in _CONTROL_BYTES)
    if binary:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return not _looks_high_entropy(data)
    return True


_CONTROLS = bytes(c for c in range(32) if c not in (9, 10, 12, 13)) + b"\x7f"
_CONTROL_BYTES = tuple(bytes([c]) for c in _CONTROLS)
