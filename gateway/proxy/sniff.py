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

_B64_RUN = re.compile(rb"[A-Za-z0-9+/_-]{4096,}={0,2}")


def _match(data: bytes, table: tuple[tuple[int, bytes, str], ...]) -> str | None:
    for offset, magic, kind in table:
        if data[offset : offset + len(magic)] == magic:
            return kind
    return None


def transfer_kind(data: bytes) -> str | None:
    """The archive/document/executable kind a body sniffs as, or None."""
    if _match(data, _IMAGE_MAGIC) or _match(data, _FONT_MAGIC):
        return None
    return _match(data, _TRANSFER_MAGIC)


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


def has_encoded_blob(data: bytes) -> bool:
    """A long base64/base64url run: a file smuggled inside a text body."""
    return _B64_RUN.search(data) is not None


_HTML_START = re.compile(rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body|title|meta|script|div|p|table)[\s>]", re.IGNORECASE | re.DOTALL)


def looks_like_html(data: bytes) -> bool:
    """Browser-style HTML detection for untyped responses (as old EWS and CUPS CGIs send)."""
    return _HTML_START.match(data[:1024]) is not None
