"""A web font is checked as a font, not only by the length in its header (issue 21 round 4, F4).

``wOFF`` + a length field + 500 KiB of anything passed the length check: a font
file is a container, and a browser told to navigate to one saves it. A font the
proxy passes on must parse as a font with fontTools (WOFF, WOFF2, TrueType,
OpenType/CFF), every table must be one of the OpenType tables a text font uses
(``TABLES``: no private tables, no ``DSIG`` signature blob, no ``meta``, ``SVG ``
or bitmap tables that hold arbitrary documents or images), every table must
decompile (glyph outlines expanded too), and the file's bytes must be exactly its
header, its table directory and its tables, back to back (4-byte padding at
most): no gap, no overlap, no bytes after the last table, no WOFF/WOFF2
metadata or private block. Embedded OpenType (``.eot``, Internet Explorer only)
is not served at all.

This is pure (no I/O): the bytes are parsed in memory. The fonts' sizes are capped
before (``max_font_body``) and WOFF/WOFF2 decompress no further than the sizes
their directories declare, which are capped here too (``MAX_SFNT_SIZE``).
What a font can still carry is in its glyph outlines (coordinates are numbers a
device chooses): see docs/transfer-blocking.md.
"""

from __future__ import annotations

import io
import logging
import struct

from fontTools.ttLib import TTFont, TTLibError
from fontTools.ttLib.woff2 import WOFF2DirectoryEntry, woff2DirectorySize

# decompressed font (WOFF/WOFF2): a Latin text font is a few hundred KB, the largest real web font
# on this machine (NanumBarunGothic, 17,699 Hangul glyphs) 1.96 MB; checking costs ~1.3 s per MB
# of real outlines, more for crafted ones (a 3.6 MB one: 5-7 s), so the cap is also a cost bound
MAX_SFNT_SIZE = 2560 * 1024
# the OpenType tables of text fonts (TrueType and CFF outlines, layout, variations, hinting)
TABLES = frozenset({
    "cmap", "head", "hhea", "hmtx", "maxp", "name", "OS/2", "post",
    "cvt ", "fpgm", "glyf", "loca", "prep", "gasp", "hdmx", "kern", "LTSH", "VDMX", "PCLT",
    "CFF ", "CFF2", "VORG",
    "BASE", "GDEF", "GPOS", "GSUB", "JSTF", "MATH",
    "vhea", "vmtx",
    "avar", "cvar", "fvar", "gvar", "HVAR", "MVAR", "STAT", "VVAR",
    "COLR", "CPAL",
    "FFTM",  # FontForge's three timestamps (28 bytes): most free fonts carry it
})
_SMALL_ONLY = {"FFTM": 32, "DSIG": 8}  # fixed-size tables; an empty DSIG stub (8 bytes) is common
_FAILURES = (TTLibError, AssertionError, struct.error, ValueError, KeyError, IndexError, TypeError,
             AttributeError, EOFError, OverflowError, ZeroDivisionError, RecursionError, LookupError)

logging.getLogger("fontTools").setLevel(logging.ERROR)  # a malformed font is refused, not logged as a warning


def _pad(n: int) -> int:
    return (n + 3) & ~3


def _woff_header_problem(data: bytes, length: int, sfnt_size: int, meta_off: int, meta_len: int,
                         priv_off: int, priv_len: int) -> str | None:
    """What a WOFF or WOFF2 header declares that no clean font has, or None."""
    if length != len(data):
        return "a length that is not its size"
    if meta_len or priv_len or meta_off or priv_off:
        return "a metadata or private data block"
    if sfnt_size > MAX_SFNT_SIZE:
        return f"a declared size over {MAX_SFNT_SIZE} bytes"
    return None


def _back_to_back(data: bytes, start: int, ranges: list[tuple[int, int]]) -> str | None:
    """Tables (offset, stored length) follow the directory and each other without a gap, and the
    last one ends the file (4-byte padding allowed between and after)."""
    pos = start
    for offset, length in sorted(ranges):
        if offset != pos and offset != _pad(pos):
            return "bytes no table accounts for" if offset > pos else "overlapping tables"
        pos = offset + length
    if len(data) not in (pos, _pad(pos)):
        return "bytes after its last table" if len(data) > pos else "a table past its end"
    return None


def _layout_problem(data: bytes, kind: str) -> str | None:
    if kind in ("ttf", "otf"):
        count = int.from_bytes(data[4:6], "big")
        start = 12 + 16 * count
        if len(data) < start:
            return "a cut table directory"
        ranges = [struct.unpack(">II", data[12 + 16 * i + 8 : 12 + 16 * i + 16]) for i in range(count)]
        return _back_to_back(data, start, ranges)
    if kind == "woff":
        (_sig, _flavor, length, count, _res, sfnt_size, _maj, _min, meta_off, meta_len, _meta_orig,
         priv_off, priv_len) = struct.unpack(">4sIIHHIHHIIIII", data[:44])
        if problem := _woff_header_problem(data, length, sfnt_size, meta_off, meta_len, priv_off, priv_len):
            return problem
        start = 44 + 20 * count
        if len(data) < start:
            return "a cut table directory"
        ranges = [struct.unpack(">II", data[44 + 20 * i + 4 : 44 + 20 * i + 12]) for i in range(count)]
        return _back_to_back(data, start, ranges)
    # woff2: header, variable-length directory, one compressed stream
    (_sig, _flavor, length, count, _res, sfnt_size, compressed, _maj, _min, meta_off, meta_len, _meta_orig,
     priv_off, priv_len) = struct.unpack(">4sIIHHIIHHIIIII", data[:woff2DirectorySize])
    if problem := _woff_header_problem(data, length, sfnt_size, meta_off, meta_len, priv_off, priv_len):
        return problem
    stream = io.BytesIO(data)
    stream.seek(woff2DirectorySize)
    tables = 0
    for _ in range(count):
        entry = WOFF2DirectoryEntry()
        entry.fromFile(stream)
        tables += entry.origLength
    if tables > MAX_SFNT_SIZE:
        return f"tables over {MAX_SFNT_SIZE} bytes"
    end = stream.tell() + compressed
    if len(data) not in (end, _pad(end)):
        return "bytes after its compressed tables" if len(data) > end else "cut compressed tables"
    return None


def cache_form(data: bytes) -> bytes:
    """``data`` as the structure check's verdict is remembered under: a WOFF/WOFF2's
    majorVersion/minorVersion (the font's own version number, which nothing here reads) zeroed, so
    a device that varies them per request (a new body for free) does not get a new parse each time."""
    if data[:4] == b"wOF2" and len(data) >= woff2DirectorySize:
        return data[:24] + b"\x00\x00\x00\x00" + data[28:]
    if data[:4] == b"wOFF" and len(data) >= 44:
        return data[:20] + b"\x00\x00\x00\x00" + data[24:]
    return data


def font_problem(data: bytes, kind: str | None) -> str | None:
    """Why ``data`` (sniffed as ``kind``: woff, woff2, ttf, otf, eot) is not only a web font, or None."""
    if kind == "eot":
        return "Embedded OpenType, which no current browser uses"
    if kind not in ("woff", "woff2", "ttf", "otf") or len(data) < 48:
        return "not a font file"
    try:
        problem = _layout_problem(data, kind)
        if problem is not None:
            return f"a font with {problem}"
        font = TTFont(io.BytesIO(data), lazy=False, recalcBBoxes=False, recalcTimestamp=False)
        tags = [tag for tag in font.reader.keys()]
        unknown = sorted(str(tag) for tag in tags if tag not in TABLES)
        if unknown:
            return f"a font with tables no text font needs ({', '.join(unknown[:5])})"
        for tag in tags:
            font[tag]
        if "glyf" not in tags and "CFF " not in tags and "CFF2" not in tags:
            return "a font without glyph outlines"
    except _FAILURES as exc:
        return f"a font that does not parse ({type(exc).__name__})"
    return None
