"""Content-Encoding undone with a bound: a small compressed body never becomes a huge one.

mitmproxy decodes a whole body the first time an addon reads ``.content``/``.text``; a 1 MB
gzip "bomb" becomes a gigabyte in memory before any size check runs. Here the body is
decoded as a stream (zlib ``decompressobj`` / brotli ``Decompressor`` with an output limit)
that stops one byte past ``limit``. Only gzip, deflate and br are decoded; any other or
stacked encoding is refused (fail closed).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import brotli

DECODED = frozenset({"gzip", "x-gzip", "deflate", "br"})
IDENTITY = frozenset({"", "identity"})
_GZIP_OR_ZLIB = 32 + zlib.MAX_WBITS  # auto-detects a gzip or zlib header


@dataclass(frozen=True, slots=True)
class Decoded:
    """``body`` is the whole decoded body, or None when ``problem`` says why not."""

    body: bytes | None
    encoded_size: int
    decoded_size: int  # bytes produced before decoding stopped (at most limit + 1)
    problem: str = ""  # "" | "too_large" | "unsupported" | "corrupt"


def _zlib_bounded(raw: bytes, wbits: int, limit: int) -> tuple[bytes, bool]:
    """(decoded bytes up to limit + 1, finished). Several gzip members are decoded in turn."""
    out = bytearray()
    data = raw
    while data:
        d = zlib.decompressobj(wbits)
        while True:
            chunk = d.decompress(data, limit + 1 - len(out))
            out += chunk
            if len(out) > limit:
                return bytes(out), False
            data = d.unconsumed_tail
            if not data and not chunk:
                break
        if not d.eof:
            raise zlib.error("truncated stream")
        data = d.unused_data if wbits == _GZIP_OR_ZLIB else b""
    return bytes(out), True


def _brotli_bounded(raw: bytes, limit: int) -> tuple[bytes, bool]:
    d = brotli.Decompressor()
    out = bytearray(d.process(raw, output_buffer_limit=limit + 1))
    while len(out) <= limit and not d.is_finished():
        chunk = d.process(b"", output_buffer_limit=limit + 1 - len(out))
        if not chunk:
            break
        out += chunk
    if len(out) > limit:
        return bytes(out[: limit + 1]), False
    if not d.is_finished():
        raise brotli.error("truncated stream")
    return bytes(out), True


def decode_bounded(raw: bytes, content_encoding: str, limit: int) -> Decoded:
    """Decode ``raw`` per its Content-Encoding, refusing what would exceed ``limit`` bytes."""
    encoding = content_encoding.strip().lower()
    if encoding in IDENTITY:
        problem = "too_large" if len(raw) > limit else ""
        return Decoded(None if problem else raw, len(raw), len(raw), problem)
    if encoding not in DECODED:
        return Decoded(None, len(raw), 0, "unsupported")
    try:
        if encoding == "br":
            body, finished = _brotli_bounded(raw, limit)
        elif encoding == "deflate":
            try:
                body, finished = _zlib_bounded(raw, zlib.MAX_WBITS, limit)
            except zlib.error:  # "deflate" without the zlib header, as some servers send
                body, finished = _zlib_bounded(raw, -zlib.MAX_WBITS, limit)
        else:
            body, finished = _zlib_bounded(raw, _GZIP_OR_ZLIB, limit)
    except (zlib.error, brotli.error):
        return Decoded(None, len(raw), 0, "corrupt")
    if not finished:
        return Decoded(None, len(raw), len(body), "too_large")
    return Decoded(body, len(raw), len(body))
