"""Encoded payloads hidden in text: a file smuggled as characters.

Finds base64 / base64url / base32 / hex runs (also MIME-wrapped over short
lines, JSON-escaped line breaks and ``"..."+"..."`` string joins), escaped or
spaced hex bytes (``\\x41``, ``%41``, ``41 42 43``), decimal byte arrays,
quoted-printable, uuencoded lines and ascii85 blocks.

Cheap and linear: runs are found by looking at one position every half
threshold (ordinary text costs one short match per sample); only the rare long
runs are looked at further (a regular expression over that run alone, and a
check that its characters have the entropy of encoded data, which keeps
joined-up words and repeated identifiers from counting).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EncodedHit:
    """One encoded run: its encoding and its length in characters."""

    kind: str  # base64 | base64url | base32 | hex | escaped_hex | spaced_hex | byte_array | quoted_printable | uuencode | ascii85 | data_uri
    length: int

    def describe(self) -> str:
        return f"{self.kind.replace('_', ' ')} data ({self.length} characters)"


_HEX = rb"0-9A-Fa-f"
_B64 = rb"A-Za-z0-9+/_\-"
_JOINERS = b"\r\n\\\"',"  # line breaks and string joins that may split an encoded run


@dataclass(frozen=True, slots=True)
class _Alphabet:
    """One encoding's characters: ``run`` matches a run of them at a position."""

    run: re.Pattern[bytes]
    table: bytes  # translate table: member -> b"1", else b"0"

    @classmethod
    def of(cls, chars: bytes) -> _Alphabet:
        run = re.compile(b"[" + chars + b"]*")
        table = bytes(0x31 if run.fullmatch(bytes([c])) else 0x30 for c in range(256))
        return cls(run, table)


_B64_ALPHA = _Alphabet.of(_B64 + re.escape(_JOINERS))
_ESCAPED_ALPHA = _Alphabet.of(_HEX + rb"\\xu%")
_SPACED_ALPHA = _Alphabet.of(_HEX + rb" \t,:;\-x")
_ARRAY_ALPHA = _Alphabet.of(rb"0-9 \t\r\n,")
_HEX_ONLY = re.compile(rb"[0-9A-Fa-f]+")
_B32_ONLY = re.compile(rb"[A-Z2-7]+")
_ESCAPED = re.compile(rb"(?:(?:\\x|\\u00|%)[0-9A-Fa-f]{2})+")
_SPACED = re.compile(rb"(?:(?:0x)?[0-9A-Fa-f]{2}[ \t,:;\-]+)+")
_ARRAY = re.compile(rb"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\s*,\s*)+")
_QP = re.compile(rb"=[0-9A-F]{2}(?:=[0-9A-F]{2}){2,}")
_UU_LINE = re.compile(rb"(?m)^M[\x20-\x60]{60}\r?$")
_UU_BEGIN = re.compile(rb"(?m)^begin(?:-base64)? [0-7]{3,4} \S")
_A85 = re.compile(rb"<~[!-u\s]*~>")
_SAMPLE = 4096
# Shannon entropy (bits per character) an encoding of real data reaches; joined-up words,
# identifiers and runs of one repeated character stay below
MIN_ENTROPY = {"hex": 3.0, "base32": 4.0, "base64": 4.9, "base64url": 4.9, "data_uri": 4.9}
MIN_TOKEN_ENTROPY = 3.0

ImageCheck = Callable[[bytes], bool]


def _long_runs(data: bytes, alpha: _Alphabet, length: int) -> Iterator[tuple[int, int]]:
    """(start, end) of every run of ``alpha`` characters at least ``length`` long.

    Looks at one position every ``length // 2`` characters: a run that long holds a sampled
    position with at least half the length after it, so none is missed, and ordinary text
    (short words) costs one short match per sample."""
    step = max(1, length // 2)
    n = len(data)
    match = alpha.run.match
    p = 0
    while p < n:
        end = match(data, p).end()  # type: ignore[union-attr]  # "*" always matches
        if end - p < step:
            p += step
            continue
        lo = max(0, p - step)
        start = lo + data[lo:p].translate(alpha.table).rfind(b"0") + 1
        if end - start >= length:
            yield start, end
        p = end + 1


def _entropy(sample: bytes) -> float:
    n = len(sample)
    return -sum(c / n * math.log2(c / n) for c in Counter(sample).values()) if n else 0.0


def _run_kind(run: bytes) -> str:
    if _HEX_ONLY.fullmatch(run):
        return "hex"
    if _B32_ONLY.fullmatch(run):
        return "base32"
    if b"-" in run or b"_" in run:
        return "base64url"
    return "base64"


_DATA_URI_START = re.compile(rb"data:([a-z0-9.+\-]+/[a-z0-9.+\-]+)(?:;[a-z0-9=.\-]+)*;base64,", re.IGNORECASE)
_DATA_PAYLOAD = re.compile(rb"[A-Za-z0-9+/_\-]*={0,2}")


def _decoded(payload: bytes) -> bytes | None:
    try:
        return base64.b64decode(payload.rstrip(b"=") + b"=" * (-len(payload.rstrip(b"=")) % 4), altchars=None)
    except (binascii.Error, ValueError):
        return None


def _without_harmless_data_uris(
    data: bytes, threshold: int, allow_data: ImageCheck | None
) -> tuple[bytes, EncodedHit | None]:
    """``data`` with the payloads of ``data:image/...;base64,`` URIs that decode to a harmless
    image cut out (the page may show them); any other data URI that long is a file."""
    kept: list[bytes] = []
    at = 0
    for m in _DATA_URI_START.finditer(data):
        payload = _DATA_PAYLOAD.match(data, m.end())
        assert payload is not None  # "*" always matches
        if payload.end() - payload.start() < threshold:
            continue
        mtype = m.group(1).lower()
        decoded = _decoded(payload.group()) if mtype.startswith((b"image/", b"font/")) else None
        if decoded is None or allow_data is None or not allow_data(decoded):
            return data, EncodedHit("data_uri", payload.end() - payload.start())
        kept.append(data[at : payload.start()])
        at = payload.end()
    if not kept:
        return data, None
    kept.append(data[at:])
    return b"".join(kept), None


def _base64_like(data: bytes, threshold: int, allow_data: ImageCheck | None, strict: bool) -> EncodedHit | None:
    if b"base64," in data or b"BASE64," in data:
        data, hit = _without_harmless_data_uris(data, threshold, allow_data)
        if hit is not None:
            return hit
    for start, end in _long_runs(data, _B64_ALPHA, threshold):
        raw = data[start:end]
        run = raw.translate(None, _JOINERS)
        if len(run) < threshold:
            continue
        kind = _run_kind(run)
        unbroken = len(run) == len(raw)
        if (strict and unbroken) or _entropy(run[:_SAMPLE]) >= MIN_ENTROPY[kind]:
            return EncodedHit(kind, len(run))
    return None


def _tokens(data: bytes, alpha: _Alphabet, pattern: re.Pattern[bytes], min_chars: int, kind: str) -> EncodedHit | None:
    for start, end in _long_runs(data, alpha, min_chars):
        for m in pattern.finditer(data, start, end):
            if m.end() - m.start() >= min_chars and _entropy(m.group()[:_SAMPLE]) >= MIN_TOKEN_ENTROPY:
                return EncodedHit(kind, m.end() - m.start())
    return None


def find_encoded(
    data: bytes, threshold: int, *, allow_data: ImageCheck | None = None, strict: bool = False
) -> EncodedHit | None:
    """The first encoded run in ``data`` carrying at least about ``threshold`` characters' worth.

    ``allow_data`` decides whether a ``data:image/...;base64,`` URI's decoded bytes are a
    harmless image (the page may show it); without it every such URI counts. ``strict``
    (what the browser sends): an unbroken run that long counts whatever its entropy.
    """
    if len(data) < threshold // 2:
        return None
    hit = _base64_like(data, threshold, allow_data, strict)
    if hit is not None:
        return hit
    nbytes = max(8, threshold // 2)  # bytes an escaped/spaced/array form must carry
    if b"\\" in data or b"%" in data:  # one-byte needles: fast on any text
        hit = _tokens(data, _ESCAPED_ALPHA, _ESCAPED, nbytes * 3, "escaped_hex")
        if hit is not None:
            return hit
    hit = _tokens(data, _SPACED_ALPHA, _SPACED, nbytes * 3 - 1, "spaced_hex") or _tokens(
        data, _ARRAY_ALPHA, _ARRAY, nbytes * 2, "byte_array")
    if hit is not None:
        return hit
    if data.count(b"=") * 3 >= threshold:
        qp = sum(m.end() - m.start() for m in _QP.finditer(data))
        if qp >= threshold:
            return EncodedHit("quoted_printable", qp)
    if b"begin" in data and _UU_BEGIN.search(data) is not None:
        return EncodedHit("uuencode", len(data))
    if data.count(b"\nM") * 61 >= threshold:
        uu_lines = len(_UU_LINE.findall(data))
        if uu_lines * 61 >= threshold:
            return EncodedHit("uuencode", uu_lines * 61)
    if b"<~" in data:
        for m in _A85.finditer(data):
            if m.end() - m.start() >= threshold:
                return EncodedHit("ascii85", m.end() - m.start())
    return None


_PIECE = re.compile(rb"[A-Za-z0-9+/_\-]+={0,2}")


def find_encoded_split(
    values: Iterable[bytes], threshold: int, *, min_piece: int = 12, strict: bool = False
) -> EncodedHit | None:
    """A payload split over many fields: the concatenation of every value that is itself an
    encoded-alphabet piece (at least ``min_piece`` characters), analysed as one run."""
    pieces = [v.rstrip(b"=") for v in values if len(v) >= min_piece and _PIECE.fullmatch(v)]
    if len(pieces) < 2:
        return None
    return find_encoded(b"".join(pieces), threshold, strict=strict)
