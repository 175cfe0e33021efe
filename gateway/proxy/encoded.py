"""Encoded payloads hidden in text: a file smuggled as characters.

Finds base64 / base64url / base32 / hex runs (also MIME-wrapped over short
lines, JSON-escaped line breaks and ``"..."+"..."`` string joins), escaped or
spaced hex bytes (``\\x41``, ``%41``, ``41 42 43``), decimal byte arrays,
quoted-printable, uuencoded lines and ascii85 blocks (also without ``<~ ~>``); encodings
broken up by spaces or short separators (the long pieces are judged together), numbers
as bytes with any separator, spaces/tabs as bits, and byte -> word codes (many tokens
from a small vocabulary used about uniformly, in no repeating order); any of these over
an alphabet of its own, also with a filler letter at a fixed period (``QeUeJeDe``).

Cheap and linear: runs are found by looking at one position every half
threshold (ordinary text costs one short match per sample); only the rare long
runs are looked at further (a regular expression over that run alone, and a
check that its characters have the entropy of encoded data, which keeps
joined-up words and repeated identifiers from counting).
"""

from __future__ import annotations

import base64
import binascii
import functools
import gc
import itertools
import math
import operator
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EncodedHit:
    """One encoded run: its encoding and its length in characters."""

    kind: str  # base64 | base64url | base32 | hex | escaped_hex | spaced_hex | byte_array | byte_list | quoted_printable | uuencode | ascii85 | whitespace_binary | word_code | data_uri
    length: int

    def describe(self) -> str:
        return f"{self.kind.replace('_', ' ')} data ({self.length} characters)"


ANALYSIS_BUDGET_S = 0.25  # CPU seconds one body's checks may take (a 4 MiB ordinary page: ~0.1 s)


class TooComplexToCheck(Exception):
    """A body whose checks would cost more CPU than ``ANALYSIS_BUDGET_S`` (crafted to stall
    the proxy's event loop): the caller refuses it, failing closed (issue 21 F3)."""

    def __init__(self, spent_s: float, *, wall: bool = False) -> None:
        what = "s of analysis" if not wall else "s (wall clock) of analysis"
        super().__init__(f"it is too complex to check within {spent_s:.2f} {what}")
        self.spent_s = spent_s
        self.wall = wall  # the wall-clock bound, not the CPU budget: says more about the host's load


@dataclass(slots=True)
class _Budget:
    wall_deadline: float  # perf_counter: cheap to read at every checkpoint
    cpu_deadline: float  # thread_time: read (a system call) only once the wall deadline has passed
    limit: float
    hard_deadline: float  # perf_counter: past it the check stops whatever CPU it had (inf: none)
    wall_limit: float
    gc_at_start: float  # this thread's garbage-collection time (``_gc_time``) when the check began


_BUDGET: ContextVar[_Budget | None] = ContextVar("encoded_analysis_budget", default=None)


@contextmanager
def analysis_budget(seconds: float | None = None, *, wall_seconds: float | None = None) -> Iterator[None]:
    """Checks run inside are stopped with ``TooComplexToCheck`` once they have used ``seconds``
    of this thread's CPU (the checks never await: that is how long they hold the event loop).
    The cheap wall clock is read at every checkpoint and the CPU clock only once it says the
    time is up, so a busy host (the thread not running) does not refuse an ordinary page.
    ``wall_seconds`` (checks run off the event loop, issue 21 round 5 F5) also stops them once
    that much wall-clock time has passed, CPU or not (seen at the first checkpoint after the
    CPU budget's own look, so at most ``seconds`` late). Nested budgets keep the outer one."""
    if _BUDGET.get() is not None:
        yield
        return
    limit = ANALYSIS_BUDGET_S if seconds is None else seconds
    now = time.perf_counter()
    hard = math.inf if wall_seconds is None else now + max(wall_seconds, limit)
    token = _BUDGET.set(_Budget(now + limit, time.thread_time() + limit, limit, hard, wall_seconds or 0.0,
                                _gc_time()))
    try:
        yield
    finally:
        _BUDGET.reset(token)


def _spend() -> None:
    """A checkpoint in every loop over runs, slices and windows."""
    budget = _BUDGET.get()
    if budget is None or time.perf_counter() <= budget.wall_deadline:
        return
    if time.perf_counter() > budget.hard_deadline:
        raise TooComplexToCheck(budget.wall_limit, wall=True)
    left = budget.cpu_deadline + (_gc_time() - budget.gc_at_start) - time.thread_time()
    if left <= 0:
        raise TooComplexToCheck(budget.limit)
    budget.wall_deadline = time.perf_counter() + left  # not all of it was ours: look again later


_gc_clock = threading.local()  # per thread: ``started`` (a collection in progress) and ``spent``


def _gc_time() -> float:
    """This thread's CPU seconds in garbage collections that ran inside a check so far."""
    return float(getattr(_gc_clock, "spent", 0.0))


def _time_collections(phase: str, _info: dict[str, int]) -> None:
    """A collection that runs while a check holds the thread is the whole process's cost, not the
    body's: a full collection of a large heap took longer than ``ANALYSIS_BUDGET_S`` and an
    ordinary 1.6 KB form was refused as too complex (CI). Its thread time is kept aside."""
    if _BUDGET.get() is None:
        return
    if phase == "start":
        _gc_clock.started = time.thread_time()
        return
    started = getattr(_gc_clock, "started", None)
    if started is not None:
        _gc_clock.spent = _gc_time() + time.thread_time() - started
        _gc_clock.started = None


gc.callbacks.append(_time_collections)

_HEX = rb"0-9A-Fa-f"
_HEX_CHARS = b"0123456789ABCDEFabcdef"
_B64_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-"
_NOT_B64_CHARS = bytes(c for c in range(256) if c not in _B64_CHARS)
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
_UU_ALPHA = _Alphabet.of(rb"\x20-\x60\r\n")  # uuencoded lines: no lower-case letters
_HEX_ONLY = re.compile(rb"[0-9A-Fa-f]+")
_B32_ONLY = re.compile(rb"[A-Z2-7]+")
_ESCAPED = re.compile(rb"(?:(?:\\x|\\u00|%)[0-9A-Fa-f]{2})+")
_SPACED = re.compile(rb"(?:(?:0x)?[0-9A-Fa-f]{2}[ \t,:;\-]+)+")
_ARRAY = re.compile(rb"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\s*,\s*)+")
_QP = re.compile(rb"=[0-9A-F]{2}(?:=[0-9A-F]{2}){2,}")
_UU_LINE = re.compile(rb"\nM[\x20-\x60]{60}\r?(?=\n)")  # a full uuencoded line (45 bytes)
_QP_WINDOW = 16 * 1024
# base64/hex/base32 broken up by spaces or short separators ("QUJD REVG", "...40 chars... x ...",
# "<200 chars> hello world"): runs of the alphabet plus separators, judged on their long pieces
_BROKEN_ALPHA = _Alphabet.of(_B64 + re.escape(_JOINERS) + rb" \t.:;|!?*#~()\[\]{}")
_BROKEN_PIECE = re.compile(rb"[A-Za-z0-9+/_\-]{6,}")
_B64_PIECE_TABLE = bytes(0x31 if _BROKEN_PIECE.fullmatch(bytes([c]) * 6) else 0x30 for c in range(256))
# a piece of digits (and the minus signs of the next number) right after or before a decimal point
_NUMBER_PIECE = re.compile(rb"(?<=\.)[0-9\-]{6,}(?![A-Za-z0-9+/_\-])|(?<![A-Za-z0-9+/_\-])[0-9\-]{6,}(?=\.)")
_A85_BARE_ALPHA = _Alphabet.of(rb"!-u\r\n")  # ascii85 without <~ ~> (wrapped lines allowed)
_NUMBER_LIST_ALPHA = _Alphabet.of(rb"0-9 \t\r\n,;")
_NUMBER_LIST = re.compile(rb"(?:[0-9]{1,3}[ \t\r\n,;]+)+")  # decimal or octal bytes, any separator
_BLANKS_ALPHA = _Alphabet.of(rb" \t")
_UU_ESCAPED_ALPHA = _Alphabet.of(rb"\x20-\x60n")  # uuencoded lines in a string: "\n" escapes
_WORD = re.compile(rb"[A-Za-z0-9]+")
_TOKEN_WINDOW = 64 * 1024
_UPPER_AND_DIGITS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
MIN_A85_ENTROPY = 5.5  # random ascii85 reaches ~6.3 bits per character; prose and code stay far below
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
    position with at least half the length after it, so none is missed. Ordinary text costs
    a few table lookups per sample (five probes across the half length must all be members
    before the run is measured)."""
    step = max(1, length // 2)
    n = len(data)
    match = alpha.run.match
    member = alpha.table
    q1, q2, q3, q4 = step // 4, step // 2, (3 * step) // 4, step - 1
    p = 0
    while p + step <= n:
        if not (member[data[p]] == 0x31 and member[data[p + q4]] == 0x31 and member[data[p + q2]] == 0x31
                and member[data[p + q1]] == 0x31 and member[data[p + q3]] == 0x31):
            p += step
            continue
        end = match(data, p).end()  # type: ignore[union-attr]  # "*" always matches
        if end - p < step:
            p += step
            continue
        lo = max(0, p - step)
        start = lo + data[lo:p].translate(member).rfind(b"0") + 1
        if end - start >= length:
            _spend()
            yield start, end
        p = end + 1


def _entropy(sample: bytes) -> float:
    n = len(sample)
    # one C-speed count per distinct byte (a few dozen) instead of a Counter over every byte
    return -sum(c / n * math.log2(c / n) for c in map(sample.count, set(sample))) if n else 0.0


def _entropy_at_least(sample: bytes, bits: float) -> bool:
    """``_entropy(sample) >= bits``; text with fewer than 2**bits distinct bytes cannot reach
    it (log2 of the distinct count is the most it can have), so that is looked at first."""
    if len(set(sample)) < 2 ** bits:
        return False
    return _entropy(sample) >= bits


def _run_kind(run: bytes) -> str:
    if _HEX_ONLY.fullmatch(run):
        return "hex"
    if len(run) >= 64 and len(run.translate(None, _HEX_CHARS)) * 25 <= len(run):
        return "hex"  # hex with an odd letter now and then ("z" + hex, a "g" every 30): still hex
    if _B32_ONLY.fullmatch(run):
        return "base32"
    if b"-" in run or b"_" in run:
        return "base64url"
    return "base64"


_DATA_URI_START = re.compile(rb"data:([a-z0-9.+\-]+/[a-z0-9.+\-]+)(?:;[a-z0-9=.\-]+)*;base64,", re.IGNORECASE)
_DATA_PAYLOAD = re.compile(rb"[A-Za-z0-9+/_\-]*={0,2}")


def _decoded(payload: bytes) -> bytes | None:
    body = payload.rstrip(b"=")
    try:
        return base64.b64decode(body + b"=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        return None


# base64 of image and font signatures (PNG, GIF, JPEG, RIFF/WebP, "<svg", WOFF, WOFF2): a script
# that keeps an icon as a string literal
_MEDIA_B64 = (b"iVBORw0KGgo", b"R0lGOD", b"/9j/", b"UklGR", b"PHN2Zy", b"d09GRg", b"d09GMg")


def _judge_run(raw: bytes, threshold: int, strict: bool, allow_data: ImageCheck | None = None) -> EncodedHit | None:
    run = raw.translate(None, _JOINERS)
    if len(run) < threshold:
        return None
    if allow_data is not None and run.startswith(_MEDIA_B64):
        decoded = _decoded(run)
        if decoded is not None and allow_data(decoded):
            return None  # one clean image, nothing before or after it
    kind = _run_kind(run)
    unbroken = len(run) == len(raw)
    if (strict and unbroken) or _entropy_at_least(run[:_SAMPLE], MIN_ENTROPY[kind]):
        return EncodedHit(kind, len(run))
    return None


def _judge_with_data_uris(data: bytes, start: int, end: int, threshold: int, allow_data: ImageCheck | None,
                          strict: bool) -> EncodedHit | None:
    """A long run that holds (or follows) ``data:...;base64,`` URIs: an image URI that decodes
    to a harmless image is left out, any other URI that long is a file, the rest is judged as a run."""
    pos = start
    lo = max(0, start - 200)
    for m in _DATA_URI_START.finditer(data, lo, end):
        payload = _DATA_PAYLOAD.match(data, m.end())
        assert payload is not None  # "*" always matches
        if payload.end() - payload.start() < threshold:
            continue
        mtype = m.group(1).lower()
        decoded = _decoded(payload.group()) if mtype.startswith((b"image/", b"font/")) else None
        if decoded is None or allow_data is None or not allow_data(decoded):
            return EncodedHit("data_uri", payload.end() - payload.start())
        hit = _judge_run(data[pos : max(pos, m.start())], threshold, strict, allow_data)
        if hit is not None:
            return hit
        pos = payload.end()
    return _judge_run(data[pos:end], threshold, strict, allow_data) if pos < end else None


def _base64_like(data: bytes, threshold: int, allow_data: ImageCheck | None, strict: bool) -> EncodedHit | None:
    for start, end in _long_runs(data, _B64_ALPHA, threshold):
        if data.find(b"base64,", max(0, start - 200), end) >= 0 or data.find(b"BASE64,", max(0, start - 200), end) >= 0:
            hit = _judge_with_data_uris(data, start, end, threshold, allow_data, strict)
        else:
            hit = _judge_run(data[start:end], threshold, strict, allow_data)
        if hit is not None:
            return hit
    return None


def _tokens(data: bytes, alpha: _Alphabet, pattern: re.Pattern[bytes], min_chars: int, kind: str) -> EncodedHit | None:
    for start, end in _long_runs(data, alpha, min_chars):
        for m in pattern.finditer(data, start, end):
            _spend()
            if m.end() - m.start() >= min_chars and _entropy_at_least(m.group()[:_SAMPLE], MIN_TOKEN_ENTROPY):
                return EncodedHit(kind, m.end() - m.start())
    return None


def _quoted_printable(data: bytes, threshold: int) -> EncodedHit | None:
    """Quoted-printable binary: windows where "=" is frequent (a tenth of the characters or
    more: HTML attributes stay far below) hold runs of "=XX" escapes."""
    if b"=" not in data:
        return None
    total = 0
    for lo in range(0, len(data), _QP_WINDOW):
        hi = lo + _QP_WINDOW
        if data.count(b"=", lo, hi) * 10 < min(_QP_WINDOW, len(data) - lo):
            continue
        total += sum(m.end() - m.start() for m in _QP.finditer(data, lo, hi))
        if total >= threshold:
            return EncodedHit("quoted_printable", total)
    return None


def _harmless_piece(piece: bytes, allow_data: ImageCheck | None) -> bool:
    if allow_data is None or not piece.startswith(_MEDIA_B64):
        return False
    decoded = _decoded(piece)
    return decoded is not None and allow_data(decoded)


def _uuencoded(data: bytes, threshold: int) -> EncodedHit | None:
    uu_lines = sum(len(_UU_LINE.findall(data, max(0, start - 1), end + 1))
                   for start, end in _long_runs(data, _UU_ALPHA, threshold))
    return EncodedHit("uuencode", uu_lines * 61) if uu_lines * 61 >= threshold else None


def _uuencoded_escaped(data: bytes, threshold: int) -> EncodedHit | None:
    lines = 0
    for start, end in _long_runs(data, _UU_ESCAPED_ALPHA, threshold):
        run = b"\n" + data[start:end].replace(b"\\\\", b"\\").replace(b'\\"', b'"').replace(b"\\n", b"\n") + b"\n"
        lines += len(_UU_LINE.findall(run))
    return EncodedHit("uuencode", lines * 61) if lines * 61 >= threshold else None


def _regular_separators(chunk: bytes) -> bool:
    """Short groups cut by one recurring separator ("QUJD REVG", "QUJ!DRE!VG"): the characters
    outside the alphabet are mostly one byte, about one every 2-9 characters (code mixes its
    punctuation; prose is skipped by the capitals test before this)."""
    others = chunk.translate(None, _B64_CHARS)
    if len(others) * 10 < len(chunk) or len(others) * 2 > len(chunk):
        return False
    top = max(map(others.count, set(others)))
    return top * 10 >= len(others) * 8


def _short_groups(chunk: bytes) -> bytes:
    """The groups too short to be pieces, joined, when one separator recurs regularly between
    them and they are not word-like; else nothing."""
    if not _regular_separators(chunk):
        return b""
    short = _BROKEN_PIECE.sub(b" ", chunk).translate(None, _NOT_B64_CHARS)
    if _wordlike(short) or not short.translate(None, b"0123456789"):
        return b""  # words; or numbers only, which the byte-list checks judge
    return short


def _broken_up(data: bytes, threshold: int, allow_data: ImageCheck | None) -> EncodedHit | None:
    """An encoding cut into groups joined by spaces or short separators: the long pieces of a
    run, put together, are judged like one unbroken run, slice by slice (entropy: joined-up
    words stay below; a slice with few capitals and digits, i.e. prose, is skipped unread);
    a piece that is one harmless image (the page shows it) is left out. Groups too short to be
    pieces ("QUJD REVG", "QUJ!DRE!VG") count when one separator recurs regularly (issue 21 F1,
    third round): the slice without its pieces and separators is joined and judged too.
    Linear: each slice is searched within itself (and a slice past it for a piece that crosses)."""
    for start, end in _long_runs(data, _BROKEN_ALPHA, threshold):
        found = 0
        lo = start
        marks = data[start:end].translate(_B64_PIECE_TABLE)  # alphabet characters marked "1"
        while lo < end:
            _spend()
            hi = min(end, lo + _SAMPLE)
            if hi < end and marks[hi - start - 1] == 0x31:  # a piece is whole, even past the slice
                after = marks.find(b"0", hi - start)
                hi = end if after < 0 else start + after
            chunk = data[lo:hi]
            lo = hi
            if len(chunk.translate(None, _UPPER_AND_DIGITS)) * 5 > len(chunk) * 4:
                continue  # under a fifth capitals and digits: words, not an encoding
            # decimal numbers ("24.000000", "12.345678-3.25": SVG paths) are not hex: left out
            pieces = _BROKEN_PIECE.findall(_NUMBER_PIECE.sub(b" ", chunk) if b"." in chunk else chunk)
            if allow_data is not None and any(m in chunk for m in _MEDIA_B64):
                pieces = [p for p in pieces if not _harmless_piece(p, allow_data)]
            joined = b"".join(pieces) + _short_groups(chunk)
            if not joined:
                continue
            kind = _run_kind(joined)
            if _entropy_at_least(joined, MIN_ENTROPY[kind]):
                found += len(joined)
                if found >= threshold:
                    return EncodedHit(kind, found)
    return None


def _bare_ascii85(data: bytes, threshold: int) -> EncodedHit | None:
    for start, end in _long_runs(data, _A85_BARE_ALPHA, threshold):
        run = data[start:end].translate(None, b"\r\n")
        if len(run) >= threshold and _entropy_at_least(run[:_SAMPLE], MIN_A85_ENTROPY):
            return EncodedHit("ascii85", len(run))
    return None


def _number_list(data: bytes, nbytes: int) -> EncodedHit | None:
    """Bytes written as numbers (``80 75 3 4 ...``, octal ``120 113 3 4``), any separator."""
    for start, end in _long_runs(data, _NUMBER_LIST_ALPHA, nbytes * 2):
        # in windows (overlapping by a quarter): one list is one match, however long the run
        for lo in range(start, end, _TOKEN_WINDOW):
            _spend()
            for m in _NUMBER_LIST.finditer(data, lo, min(end, lo + _TOKEN_WINDOW + _TOKEN_WINDOW // 4)):
                if m.end() - m.start() < nbytes * 2:
                    continue
                numbers = m.group().split()
                if len(numbers) >= nbytes and len(set(numbers)) >= 16:
                    return EncodedHit("byte_list", m.end() - m.start())
    return None


def _whitespace_binary(data: bytes, nbytes: int) -> EncodedHit | None:
    """Bits written as spaces and tabs: long runs where both are frequent."""
    if b"\t" not in data:
        return None
    total = 0
    for start, end in _long_runs(data, _BLANKS_ALPHA, 64):
        run = data[start:end]
        tabs = run.count(b"\t")
        if len(run) // 8 <= tabs <= len(run) - len(run) // 8:
            total += len(run)
            if total >= nbytes * 8:
                return EncodedHit("whitespace_binary", total)
    return None


def _low_vocabulary(data: bytes, nbytes: int) -> EncodedHit | None:
    """A byte -> word mapping ("apple river stone ..."): many tokens from few distinct ones, used
    about equally often and in no repeating order (prose has frequent words; a repeated
    template has as few word pairs as words)."""
    for lo in range(0, len(data), _TOKEN_WINDOW):
        _spend()
        hi = min(len(data), lo + _TOKEN_WINDOW)
        sample = _WORD.findall(data, max(lo, hi - _SAMPLE), hi)  # a cheap look first: prose fails it
        if len(sample) < 64 or max(Counter(sample).values()) * len(set(sample)) > 3 * len(sample):
            continue
        if len(set(itertools.pairwise(sample))) < 3 * len(set(sample)):
            continue
        tokens = _WORD.findall(data, lo, hi)
        if len(tokens) < 64:
            continue
        counts = Counter(tokens)
        vocab = len(counts)
        if not 2 <= vocab <= 256 or len(tokens) < 4 * vocab:
            continue
        if max(counts.values()) * vocab > 3 * len(tokens):
            continue  # some tokens far more frequent than the rest: prose, markup
        if len(set(itertools.pairwise(tokens))) < 3 * vocab:
            continue  # a repeated template
        carried = len(tokens) * math.log2(vocab) / 8
        if carried >= nbytes:
            return EncodedHit("word_code", len(tokens))
    return None


def find_encoded(
    data: bytes, threshold: int, *, allow_data: ImageCheck | None = None, strict: bool = False,
    byte_lists: bool = True,
) -> EncodedHit | None:
    """The first encoded run in ``data`` carrying at least about ``threshold`` characters' worth.

    ``allow_data`` decides whether a ``data:image/...;base64,`` URI's decoded bytes are a
    harmless image (the page may show it); without it every such URI counts. ``strict``
    (what the browser sends): an unbroken run that long counts whatever its entropy.
    ``byte_lists``: also spaced hex (``41 42 43``) and decimal byte arrays, the forms script
    and data carry (HTML and CSS pages are spared the two extra scans).
    """
    if len(data) < threshold // 2:
        return None
    hit = _base64_like(data, threshold, allow_data, strict)
    if hit is not None:
        return hit
    nbytes = max(8, threshold // 2)  # bytes an escaped/spaced/array form must carry
    if (b"\\" in data or b"%" in data) and has_at_least(data, (b"\\x", b"\\u00", b"%"), nbytes // 2):  # escapes enough
        hit = _tokens(data, _ESCAPED_ALPHA, _ESCAPED, nbytes * 3, "escaped_hex")
        if hit is not None:
            return hit
    if byte_lists:
        hit = _tokens(data, _SPACED_ALPHA, _SPACED, nbytes * 3 - 1, "spaced_hex") or _tokens(
            data, _ARRAY_ALPHA, _ARRAY, nbytes * 2, "byte_array")
        if hit is not None:
            return hit
    qp = _quoted_printable(data, threshold)
    if qp is not None:
        return qp
    hit = _uuencoded(data, threshold)
    if hit is None and b"\\" in data and b"\\n" in data:  # in a JSON or script string: line breaks escaped
        hit = _uuencoded_escaped(data, threshold)
    if hit is not None:
        return hit
    if b"~" in data and b"<~" in data:
        for m in _A85.finditer(data):
            if m.end() - m.start() >= threshold:
                return EncodedHit("ascii85", m.end() - m.start())
    return (_broken_up(data, threshold, allow_data) or _bare_ascii85(data, threshold) or _number_list(data, nbytes)
            or _whitespace_binary(data, nbytes) or _low_vocabulary(data, nbytes))


@functools.lru_cache(maxsize=16)
def _marks_run(length: int) -> re.Pattern[bytes]:
    """``length`` member marks and every one after them: a literal prefix, so the regular
    expression engine searches for it at C speed (about twice as fast as a ``bytes.find`` per
    run, whose search for a long needle is set up again at every call)."""
    return re.compile(b"1" * length + b"1*")


def _runs_at_least(data: bytes, alpha: _Alphabet, length: int) -> Iterator[tuple[int, int]]:
    """(start, end) of every run of ``alpha`` characters at least ``length`` long, at C speed:
    the body is translated to member/non-member marks once and searched for ``length`` marks
    in a row (the leftmost match starts the run and extends to the next non-member)."""
    for m in _marks_run(length).finditer(data.translate(alpha.table)):
        _spend()
        yield m.span()


TOTAL_MIN_RUN = 64  # shortest run counted towards a body's total (a CSRF token, a hash: 32-64)
MAX_TOKEN = 88  # the longest hash/signature-sized token (SHA-512 in base64); up to it a run
TOKEN_DISCOUNT = 4  # counts a quarter of its length towards a body's total


def encoded_total(data: bytes, allowance: int, *, min_run: int = TOTAL_MIN_RUN,
                  allow_data: ImageCheck | None = None) -> EncodedHit | None:
    """Encoded-looking characters over the WHOLE body, however it is cut up (issue 21 F1).

    A file cut into pieces each under the per-run threshold (3,000 characters of base64 in
    each of many ``<div>``s, attributes or ``a.push('...')`` strings) passes a per-run check:
    the count restarts at every markup character. This adds up every run of base64/base32/
    hex characters at least ``min_run`` long whose characters have the entropy of encoded
    data (words, identifiers and paths stay below), leaving out ``data:`` images that decode
    to a harmless image; a body whose total reaches ``allowance`` is an encoded file. Same
    sampling as every other scan: a position every ``min_run // 2`` characters."""
    if len(data) < allowance:
        return None
    total = 0
    kinds: Counter[str] = Counter()
    seen: set[bytes] = set()
    seen_raw: set[bytes] = set()
    for m in _marks_run(min_run).finditer(data.translate(_B64_ALPHA.table)):  # _runs_at_least, inlined
        _spend()
        raw = data[m.start() : m.end()]
        if raw in seen_raw:
            continue  # the very same characters again (a table's rows): everything below is decided by them
        seen_raw.add(raw)
        if len(set(raw[-32:])) < 12:
            continue  # the run's tail repeats a few characters (xxxx..., ----...): not encoded data
        at = raw.rfind(b"base64,")
        if at >= 0:
            raw = raw[at + 7 :]
        run = raw.translate(None, _JOINERS)
        if len(run) < min_run or run in seen or _harmless_piece(run, allow_data):
            continue  # a repeated run (the same hash, URL or token again) carries nothing new
        seen.add(run)
        kind = _run_kind(run)
        if kind != "hex" and _wordlike(run):
            continue
        if _entropy_at_least(run[:_SAMPLE], MIN_ENTROPY[kind] if len(run) >= 256 else _SHORT_ENTROPY[kind]):
            # a hash/signature-sized token on its own (a SHA-256 fingerprint, an SRI hash, a
            # job id, a link's sig=) counts a quarter: pages list dozens of them; a file cut
            # that small pays a token per 88 characters and still reaches the total
            weight = len(run) // TOKEN_DISCOUNT if len(run) <= MAX_TOKEN else len(run)
            total += weight
            kinds[kind] += weight
            if total >= allowance:
                return EncodedHit(kinds.most_common(1)[0][0] + "_pieces", total)
    return None


_LETTERS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_VOWELS = b"AEIOUaeiou"


def _wordlike(run: bytes) -> bool:
    """Letters with the vowels of words (a third or more; random base64/base32 letters hold about
    a fifth): joined-up identifiers, URLs and anchors, not an encoding."""
    sample = run[:_SAMPLE]
    letters = len(sample) - len(sample.translate(None, _LETTERS))
    vowels = len(sample) - len(sample.translate(None, _VOWELS))
    return letters > 0 and vowels * 100 >= 28 * letters


def encoded_chars(data: bytes, *, min_run: int = 96, cap: int = 1 << 30) -> int:
    """How many encoded-looking characters ``data`` holds (runs of ``min_run`` or more base64/
    base32/hex characters with encoded entropy, not word-like, each distinct run once), at most
    about ``cap``: what the per-session tally towards the device counts (issue 21 F4)."""
    if not data:  # exact: no run, no number list, no window (every count below needs characters)
        return 0
    total = 0
    seen: set[bytes] = set()
    for start, end in _runs_at_least(data, _B64_ALPHA, min_run):
        if len(set(data[end - 32 : end])) < 12:
            continue  # a few characters repeated: not encoded data
        run = data[start:end].translate(None, _JOINERS)
        if len(run) < min_run or run in seen:
            continue
        seen.add(run)
        kind = _run_kind(run)
        if kind != "hex" and _wordlike(run):
            continue
        if _entropy_at_least(run[:_SAMPLE], MIN_ENTROPY[kind] if len(run) >= 256 else _SHORT_ENTROPY[kind]):
            total += len(run)
            if total >= cap:
                return total
    # base64 in short groups ("QUJD REVG ...", "QUJ!DRE!VG"), in form fields, JSON and headers
    # too (issue 21 F1, third round): the groups joined, slice by slice
    for start, end in _runs_at_least(data, _BROKEN_ALPHA, min_run):
        for lo in range(start, end, _SAMPLE):
            _spend()
            short = _short_groups(data[lo : min(end, lo + _SAMPLE)])
            if len(short) < min_run // 2:
                continue
            kind = _run_kind(short)
            if _entropy_at_least(short, MIN_ENTROPY[kind] if len(short) >= 256 else _SHORT_ENTROPY[kind]):
                total += len(short)
                if total >= cap:
                    return total
    # bytes as decimal numbers or character references (two characters' worth each), and one
    # character per byte in any script (issue 21 F1/F2/F3, second round)
    total += 2 * number_list_bytes(data, max(0, cap - total) // 2 + 1)
    plain = unescaped(data) if total < cap and b"&#" in data else data  # "&#x420;" is a letter too
    plain = json_unescaped(plain) if total < cap else plain  # and so is "\\u0420"
    if total < cap and not plain.isascii():
        total += one_char_per_byte_chars(plain)
    if total < cap:  # any other alphabet: hex as g..v, punctuation, Cyrillic, CJK, emoji, invisible bits
        total += alphabet_chars(plain)
    return total


# a 64-character sample of random data holds fewer distinct characters than a long one
_SHORT_ENTROPY = {"hex": 3.0, "base32": 3.8, "base64": 4.5, "base64url": 4.5, "data_uri": 4.5}

_WHITESPACE = b" \t\r\n"
_RANDOM_STRIDE = 2048  # one 256-byte look per 2 KiB (at most half the allowance apart)
_RANDOM_WINDOW = 256
_GRID = random.SystemRandom()  # where a body's sampled windows start: not predictable
_CJK_PUNCT = re.compile(r"[\u3000-\u303f\uff00-\uffef\s]")
_BIN_ALPHA = _Alphabet.of(rb"01 ,\r\n")
_HEX_LIST = re.compile(rb"(?:0[xX][0-9A-Fa-f]{1,2}[\s,;]*){16,}")
_ENTITIES = ((b"&lt;", b"<"), (b"&gt;", b">"), (b"&quot;", b'"'), (b"&#39;", b"'"), (b"&amp;", b"&"))


def _random_window(w: bytes) -> bool:
    """256 bytes that look like encoded data over SOME alphabet (base85, Z85, a re-lettered base64,
    ...): no spacing, many distinct characters used about uniformly (entropy near the most the
    window's own alphabet allows) and few repeated character pairs (words and code repeat theirs)."""
    if len(w) - len(w.translate(None, _WHITESPACE)) > 8:
        return False  # prose, markup and formatted code are spaced
    distinct = len(set(w))
    if distinct < 24:
        return False  # small alphabets (hex, digits, bits) have their own checks
    h = _entropy(w)
    if h < 4.3 or h < 0.9 * math.log2(distinct):
        return False
    if max(map(w.count, set(w))) * distinct > 5 * len(w):
        return False  # one character far above the mean: a table's row marker ("Q4]/oQ4i/}Q4j0O"), not random
    pairs = len({w[i : i + 2] for i in range(len(w) - 1)})
    if pairs * 100 < 85 * (len(w) - 1):
        return False
    # a table, not random data: a minified parser/lookup table (Lezer/CodeMirror, ...) repeats a
    # character two places on ("<a<c<g=P=R") a tenth of the time or more; random data over 24+
    # characters does so about 1/distinct of the time (4 % at most)
    same2 = sum(1 for a, b in zip(w, w[2:], strict=False) if a == b)
    return same2 * 100 < 10 * (len(w) - 2)


def _random_cjk(w: bytes) -> bool:
    """One character per byte over non-ASCII characters of any script (issue 21 F3): Cyrillic,
    Latin Extended, Greek, CJK, ... ``chr(0x400 + byte)``. Two tells, either enough:
    CJK-sized alphabets: about 85 characters, many distinct (random picks from 256 give ~63 %),
    with neither spaces nor the punctuation prose has; any script: the letters (spaces left
    aside) are near-uniform over 64 or more distinct code points. Real text in any language has
    a small alphabet (Russian, Greek, German: ~33-60 letters) or skewed frequencies (the
    particles and kana of Japanese, the syllables of Korean)."""
    text = w.decode("utf-8", "ignore")
    if len(text) < 60:
        return False
    letters = _squeezed(text)
    if len(letters) < 60 or len(letters) - len(letters.encode("ascii", "ignore")) < len(letters) * 9 // 10:
        return False  # (the counts at C speed: a generator over the characters cost a third of the page's checks)
    cjk = len(_CJK_RANGE.findall(text)) >= len(text) * 9 // 10
    if cjk and not _CJK_PUNCT.search(text) and len(set(text)) * 100 >= 50 * len(text):
        return True
    counts = Counter(letters)
    distinct = len(counts)
    if len(letters) < 120 or distinct < 64 or max(counts.values()) * distinct > 4 * len(letters):
        return False
    # and no repeated words: random picks hardly ever repeat a pair of characters
    pairs = len({letters[i : i + 2] for i in range(len(letters) - 1)})
    return pairs * 100 >= 92 * (len(letters) - 1)


_CJK_RANGE = re.compile("[\u2e80-\U0010ffff]")


def one_char_per_byte_chars(data: bytes) -> int:
    """Characters of ``data`` that look like one character per byte (``_random_cjk``), in
    256-byte looks: what the per-user tally counts for non-ASCII text (issue 21 F3)."""
    total = 0
    for p in range(0, len(data) - _RANDOM_WINDOW + 1, _RANDOM_WINDOW):
        _spend()
        w = data[p : p + 3 * _RANDOM_WINDOW]  # 85-256 characters, whatever the script
        if not w.isascii() and _random_cjk(w):
            total += _RANDOM_WINDOW
    return total


def _squeezed(text: str) -> str:
    """``text`` without its whitespace (any script's: no-break and ideographic spaces too), at
    C speed (``str.translate`` with a table is a Python-level lookup per character)."""
    return "".join(text.split())


_ASCII_SPACE = b" \t\r\n\f\v"
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
BITS_PER_CHAR = 6  # the unit of the allowances: a base64 character carries 6 bits


MAX_FILLERS = 3  # filler symbols taken out of a window before it is judged again (issue 21 round 5 F1)
MAX_FILLER_PERIOD = 8  # a filler after every character up to every 7 characters


def _periodic(s: str, symbol: str) -> bool:
    """``symbol`` sits at a fixed period in ``s``: 90 % or more of the places ``r, r+k, r+2k, ...``
    hold it, for some period ``k`` of 2 to ``MAX_FILLER_PERIOD`` (a filler inserted after every
    character or group); a symbol frequent at irregular places (the zeros of a table, base64's
    "A" over a PNG's zero bytes, quotes around words) is not a filler."""
    for k in range(2, MAX_FILLER_PERIOD + 1):
        for r in range(k):
            places = s[r::k]
            if places.count(symbol) * 10 >= 9 * len(places):
                return True
    return False


def _fillers(s: str, counts: dict[str, int]) -> list[str]:
    """The filler symbols of a window ``s`` (symbol -> count): up to ``MAX_FILLERS`` symbols each
    far above the mean of the rest (3x, 4x over 32 symbols) and at a fixed period (``_periodic``),
    taken out one after the other, when what is left has the entropy of random picks from its own
    alphabet (90 % of log2 of its size or more); else none. A filler letter after every character
    ("QeUeJeDe...") or group ("QU eJD eRE e") lowers a window's entropy and puts one symbol far
    above the mean, so the data must be judged with the filler left out (issue 21 round 5 F1)."""
    rest = dict(counts)
    out: list[str] = []
    while len(out) < MAX_FILLERS and len(rest) >= 3:
        n = sum(rest.values())
        top = max(rest, key=rest.__getitem__)
        if rest[top] * len(rest) <= (3 if len(rest) <= 32 else 4) * n or not _periodic(s, top):
            break
        out.append(top)
        del rest[top]
    n = sum(rest.values())
    if not out or n < 64:
        return []
    h = -sum(c / n * math.log2(c / n) for c in rest.values())
    return out if h >= 0.9 * math.log2(len(rest)) else []


def symbol_bits(text: str, fillers: bool = True) -> float:
    """Bits per character ``text`` carries when it reads as random data over its OWN alphabet,
    whatever that alphabet is (issue 21 F1, fourth round): 2 or more symbols of any kind (ASCII
    letters, digits, punctuation, letters of any script, CJK, emoji, invisible characters),
    whitespace left aside (groups joined). 0.0 when it does not:

    * the symbols are used about uniformly: entropy within 5 % of log2 of the alphabet size
      (less its small-sample bias) and no symbol far above the mean; prose, code and markup
      use a few characters (``e``, ``=``, ``<``) much more than the rest;
    * it is not word-like or code-like: an LZ compressor gains nothing on random data over
      any alphabet and a lot on prose and code, because they repeat words and phrases. The
      same thing is counted directly: the k-grams (k the length at which random picks from
      the alphabet would hardly ever repeat: d**k >= 16 n) are 90 % distinct or more; and a
      symbol comes back two places on no more often than chance (parser and lookup tables).

    A symbol far above the mean at a fixed period (a filler letter after every character or
    group, ``_fillers``) is taken out and the rest judged; its bits are spread over the whole
    window (issue 21 round 5 F1).

    Then each character carries about the measured entropy (log2 of the alphabet for
    uniform use): hex written as ``ghijklmnopqrstuv``, 16 punctuation marks, 16 CJK or
    Cyrillic characters or emoji gives 4 bits per character, base32 as 32 Cyrillic letters
    5, zero-width U+200B/U+200C bits 1."""
    s = _squeezed(text)
    n = len(s)
    if n < 64:
        return 0.0
    symbols = set(s)
    d = len(symbols)
    if d < 2 or d * 4 > n:
        return 0.0  # one symbol, or too few characters (4 a symbol) to judge an alphabet this large
    if s.isascii():
        listed = list(symbols)
        counts = list(map(s.count, listed))  # a C-speed count per symbol
    else:
        tally = Counter(s)
        listed = list(tally)
        counts = list(tally.values())
    if max(counts) * d > (3 if d <= 32 else 4) * n:
        # one symbol far above the mean: runs of zeros, prose's "e", markup's "<" carry little;
        # a filler symbol inserted at every k-th place does not make the rest carry less: the
        # window is judged without it, its bits spread over the whole window (round 5 F1)
        found = _fillers(s, dict(zip(listed, counts, strict=True))) if fillers else []
        if not found:
            return 0.0
        rest = s
        for filler in found:
            rest = rest.replace(filler, "")
        if rest.isascii() and rest.isdigit():
            return 0.0  # numbers and their separators ("0,7,14,21"): the number-list checks judge them
        return symbol_bits(rest, False) * len(rest) / n
    h = -sum(c / n * math.log2(c / n) for c in counts)
    expected = math.log2(d) - (d - 1) / (2 * n * math.log(2))  # what n random picks reach on average
    if h < 0.95 * expected:
        return 0.0
    k = 2
    while d**k < 16 * n:
        k += 1
    grams = n - k + 1
    if len(set(zip(*(s[j:] for j in range(k)), strict=False))) * 10 < 9 * grams:  # the k-grams, at C speed
        return 0.0  # repeated words, identifiers, phrases: LZ would gain
    same2 = sum(map(operator.eq, s, s[2:]))
    chance = 1 / d
    if same2 > (n - 2) * (chance + 3 * math.sqrt(chance * (1 - chance) / (n - 2)) + 0.02):
        return 0.0  # a table's recurring row pattern
    return h


_DIGITS = b"0123456789"


def _decimal_fractions(w: bytes) -> bool:
    """Numbers with decimal fractions (SVG path coordinates ``l12.345678-3.250000``, chart data):
    their low digits are as random as data, and an icon holds hundreds; they are not judged as
    an alphabet (numbers as bytes have their own checks)."""
    digits = len(w) - len(w.translate(None, _DIGITS))
    return digits * 2 >= len(w) and w.count(b".") * 16 >= len(w)


_INVISIBLE = re.compile("[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
                        "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\U0001d173-\U0001d17a\U000e0000-\U000e0fff]")


def text_bits(text: str) -> float:
    """Bits of information ``text`` carries over small or foreign alphabets: its invisible
    characters (zero-width spaces and joiners, direction marks, variation selectors, tag
    characters: log2 of the number of distinct ones each, at least 1 bit), in a run or between
    visible letters, plus, when the rest reads as random text over its own alphabet
    (``symbol_bits``), that many bits per character."""
    bits = 0.0
    if not text.isascii():
        invisible = _INVISIBLE.findall(text)
        if invisible:
            bits = len(invisible) * max(1.0, math.log2(len(set(invisible))))
            text = _INVISIBLE.sub("", text)
    squeezed = _squeezed(text)
    h = symbol_bits(squeezed)
    return bits + h * len(squeezed) if h else bits


def _window_text(data: bytes, p: int) -> str | None:
    """The window at ``p`` as text (256 bytes, or 768 when not ASCII: 85-256 characters of any
    script), or None when it is ASCII text the other checks judge: a rich alphabet (prose,
    markup, code; base64/base85 are ``_random_window``'s) or numbers with decimal fractions."""
    w = data[p : p + _RANDOM_WINDOW]
    if not w.isascii():
        return data[p : p + 3 * _RANDOM_WINDOW].decode("utf-8", "ignore")
    letters = w.translate(None, _ASCII_SPACE)
    distinct = set(letters)
    if len(distinct) >= 24:  # one C-speed translate and set: the common case
        # base64 with a filler letter after every character or group ("QeUeJeDe", "QU eJD e"):
        # a quarter or more of the window one symbol (a filler every 4th place or closer: a
        # sparser one leaves base64's entropy to the run checks), so one of the first 8 places
        # holds it (8 C-speed counts; prose's "e" is an eighth); judged without it over three
        # windows' length, so that what is left holds enough characters for its alphabet
        # (issue 21 round 5 F1)
        if max(map(letters.count, set(letters[:8]))) * 4 < len(letters):
            return None
        wide = data[p : p + 3 * _RANDOM_WINDOW]
        return wide.decode("ascii") if wide.isascii() else None
    if _decimal_fractions(w):
        return None
    return w.decode("ascii")


def alphabet_chars(data: bytes) -> int:
    """Information over small or foreign alphabets in ``data`` (``text_bits``), every window
    looked at (request data: a few KB), in base64 characters' worth (``BITS_PER_CHAR`` bits
    each): the per-user tally's count of what ``random_text`` samples in a page. Hex and decimal
    digits are left to the run counts of ``encoded_chars`` (bits as ``0``/``1`` are counted
    here); a window seen before counts once."""
    seen: set[str] = set()
    bits = 0.0
    p = 0
    while p + 64 <= len(data):
        _spend()
        text = _window_text(data, p)
        p += _RANDOM_WINDOW if text is None or (text.isascii() and len(text) <= _RANDOM_WINDOW) else 3 * _RANDOM_WINDOW
        if text is None or text in seen or (text.isascii() and _HEX_DIGITS.issuperset(_squeezed(text))
                                             and len(set(_squeezed(text))) > 8):
            continue  # hex (and decimal digits): the run counts above judge those
        seen.add(text)
        bits += text_bits(text)
    return int(bits) // BITS_PER_CHAR


def random_text(data: bytes, allowance: int) -> EncodedHit | None:
    """Encoded data over any alphabet (issue 21 F2/F3): windows sampled every KiB that look
    random (``_random_window``, or one CJK character per byte), counted as a KiB each; a body
    with ``allowance`` characters' worth is an encoded file. Cost: one 256-byte look per KiB,
    a ``set`` and a whitespace count for ordinary text. Each look falls at a random offset
    within its stride (issue 21 F2, third round): text placed where a fixed grid looks (prose
    at offsets 0-255 of every 2 KiB, base85 between) cannot know where the looks fall."""
    if len(data) < allowance:
        return None
    total = 0
    stride = max(_RANDOM_WINDOW, min(_RANDOM_STRIDE, allowance // 2))
    rng = random.Random(_GRID.getrandbits(64))
    last = len(data) - _RANDOM_WINDOW
    for base in range(0, last + 1, stride):
        _spend()
        p = base + rng.randrange(min(stride, last - base + 1))  # each look anywhere in its stride
        w = data[p : p + _RANDOM_WINDOW]
        if w.isascii():
            hit = w.count(b" ") <= 8 and _random_window(w)  # prose, markup, code: one C-speed count
        else:
            hit = _random_cjk(data[p : p + 3 * _RANDOM_WINDOW]) or _random_window(w)
        if hit:
            total += stride
        else:  # any other alphabet, invisible characters: the bits of the window, over its stride
            text = _window_text(data, p)
            bits = text_bits(text) if text is not None else 0.0
            if text is None or not bits:
                continue
            region = len(text.encode()) if not text.isascii() else len(text)
            total += int(stride * bits / max(region, 1)) // BITS_PER_CHAR
        if total >= allowance:
            return EncodedHit("random_text", total)
    return None


_LIST_ALPHA = _Alphabet.of(rb"0-9 \t\r\n,;")
_DECIMAL = re.compile(rb"[0-9]+")
MIN_BYTE_LIST = 32  # small integers (0..255) in a row that are byte data
_LIST_WINDOW = 8 * 1024  # numbers are read from a long list this many characters at a time
# CSS custom properties holding small numbers, in runs (spaces and line breaks between them too:
# "--a0: 80; --a1: 75", issue 21 F1 third round); the last may end at "}" without ";"
_CSS_PROP_RUN = re.compile(rb"(?:--[A-Za-z0-9_\-]{0,40}:[ \t]*[0-9]{1,3}[ \t]*(?:;|(?=\}))\s*){%d,}" % MIN_BYTE_LIST)
_CSS_VALUE = re.compile(rb":[ \t]*([0-9]{1,3})")
_OCTAL_ESCAPE = re.compile(rb"\\[0-7]{3}\\{1,2}[0-7]")  # in a JSON string the backslash is doubled
_OCTAL_RUN = re.compile(rb"(?:\\{1,2}[0-7]{1,3}){%d,}" % MIN_BYTE_LIST)
_OCTAL_VALUE = re.compile(rb"(?<=\\)[0-7]{1,3}")
_CHAR_REF = re.compile(rb"&#(?:[xX]([0-9A-Fa-f]{1,6})|([0-9]{1,7}));")


_TEXT_CODES = frozenset([9, 10, 13, *range(32, 127), *range(160, 256)])


def _binary_refs(values: list[int]) -> list[int]:
    """Character references are bytes when they spell no text: a run counts only if a sixteenth
    or more are control characters (random bytes: about a quarter); references that spell text
    (an EWS that escapes every letter) are judged as the text they show (``any_alphabet``)."""
    other = sum(1 for v in values if v not in _TEXT_CODES)
    return values if other * 16 >= len(values) else []


def _byte_run(values: list[int]) -> int:
    """How many bytes a list of integers carries: its runs of ``MIN_BYTE_LIST`` or more values
    in 0..255 (a larger value ends a run) that are not a sorted table (lookup tables ascend;
    data goes up about half the time) and use 16 or more distinct values."""
    carried = 0
    run: list[int] = []
    for v in [*values, 256]:
        if v <= 255:
            run.append(v)
            continue
        if len(run) >= MIN_BYTE_LIST and len(set(run)) >= 16:
            up = sum(1 for a, b in itertools.pairwise(run) if b > a)
            if len(run) // 5 <= up <= len(run) * 4 // 5:
                carried += len(run)
        run = []
    return carried


def has_at_least(data: bytes, needles: tuple[bytes, ...], count: int) -> bool:
    """``sum(data.count(n) for n in needles) >= count``, found with at most ``count`` searches that
    stop once enough are seen: a needle whose first or last byte the body lacks is absent (two
    one-byte searches, memchr speed: ~1 us per 100 KB, where ``bytes.count`` or ``find`` of a
    two-byte needle reads every byte at ~100 us). Occurrences are counted as ``bytes.count``
    does (not overlapping)."""
    if count <= 0:
        return True
    found = 0
    for needle in needles:
        if len(needle) > 1 and (needle[:1] not in data or needle[-1:] not in data):
            continue  # a one-byte search is a memchr; a longer needle's search reads every byte
        pos = data.find(needle)
        while pos >= 0:
            found += 1
            if found >= count:
                return True
            pos = data.find(needle, pos + len(needle))
    return False


def number_list_bytes(data: bytes, cap: int = 1 << 30) -> int:
    """Bytes written as decimal numbers, summed over the body however it is cut up (issue 21 F1,
    second round): comma/semicolon lists (``String.fromCharCode(80,75,3,...)`` in chunks, JSON
    arrays), CSS custom properties (``--a0:80;--a1:75;``) and numeric character references
    (``&#x50;&#x4b;``, ``&#80;``), each in runs of ``MIN_BYTE_LIST`` or more; at most about
    ``cap``. Cheap on ordinary text: a C-speed translate and a few counts."""
    total = 0
    if has_at_least(data, (b",", b";"), MIN_BYTE_LIST):
        for start, end in _runs_at_least(data, _LIST_ALPHA, 2 * MIN_BYTE_LIST):
            if data.count(b",", start, end) + data.count(b";", start, end) < MIN_BYTE_LIST - 1:
                continue  # indentation, a long number: not a list
            for lo in range(start, end, _LIST_WINDOW):  # a window at a time: stops once ``cap`` is reached
                _spend()
                total += _byte_run([int(n) for n in _DECIMAL.findall(data, lo, min(end, lo + _LIST_WINDOW))])
                if total >= cap:
                    return total
    if has_at_least(data, (b"--",), MIN_BYTE_LIST):
        for m in _CSS_PROP_RUN.finditer(data):  # whole runs at C speed, then their numbers
            for lo in range(m.start(), m.end(), _LIST_WINDOW):
                _spend()
                total += _byte_run([int(v) for v in _CSS_VALUE.findall(data, lo, min(m.end(), lo + _LIST_WINDOW))])
                if total >= cap:
                    return total
    if has_at_least(data, (b"\\",), MIN_BYTE_LIST) and _OCTAL_ESCAPE.search(data):
        for m in _OCTAL_RUN.finditer(data):  # JS octal escapes "\\101\\102...", decoded like \\x and \\u
            _spend()
            total += _byte_run([min(int(v, 8), 256) for v in _OCTAL_VALUE.findall(m.group())])
            if total >= cap:
                return total
    if has_at_least(data, (b"&#",), MIN_BYTE_LIST):
        values: list[int] = []
        last = -1
        for m in _CHAR_REF.finditer(data):
            _spend()
            if m.start() - last > 8 or len(values) >= 1024:  # a few characters between still one run
                total += _byte_run(_binary_refs(values))
                values = []
                if total >= cap:
                    return total
            values.append(int(m.group(1), 16) if m.group(1) else int(m.group(2)))
            last = m.end()
        total += _byte_run(_binary_refs(values))
    return total


def low_entropy_forms(data: bytes, allowance: int) -> EncodedHit | None:
    """Bytes written as bits (``0``/``1`` text), as ``0x41,0x42,...`` lists or as decimal numbers
    (``number_list_bytes``: two characters' worth per byte), summed over the body: the forms too
    plain for the entropy checks (every textual type, HTML and CSS too)."""
    if len(data) < allowance:
        return None
    listed = number_list_bytes(data, allowance // 2)
    if listed * 2 >= allowance:
        return EncodedHit("byte_list_pieces", listed * 2)
    bits = 0
    for start, end in _runs_at_least(data, _BIN_ALPHA, 64):
        run = data[start:end]
        ones = run.count(b"1")
        zeros = run.count(b"0")
        if ones + zeros >= 64 and min(ones, zeros) * 8 >= ones + zeros:
            bits += ones + zeros
            if bits >= allowance:
                return EncodedHit("binary_digits", bits)
    if has_at_least(data, (b"0x", b"0X"), allowance // 8):
        listed = sum(m.end() - m.start() for m in _HEX_LIST.finditer(data))
        if listed >= allowance:
            return EncodedHit("hex_list", listed)
    return None


def _char_of(m: re.Match[bytes]) -> bytes:
    value = int(m.group(1), 16) if m.group(1) else int(m.group(2))
    if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
        return b"\xef\xbf\xbd"  # what a browser shows: U+FFFD
    return chr(value).encode()


def unescaped(data: bytes) -> bytes:
    """HTML text with the common named and every numeric character reference (``&#x420;``,
    ``&#1056;``) undone: what a page shows as text."""
    if b"&" not in data:
        return data
    if b"&#" in data:
        data = _CHAR_REF.sub(_char_of, data)
    for entity, char in _ENTITIES:
        data = data.replace(entity, char)
    return data


_JSON_U = re.compile(rb"\\u([0-9A-Fa-f]{4})")


def _json_char(m: re.Match[bytes]) -> bytes:
    return chr(int(m.group(1), 16)).encode("utf-8", "replace")  # a lone surrogate: "?"


def json_unescaped(data: bytes) -> bytes:
    """``data`` with JSON/JavaScript ``\\uXXXX`` escapes undone when it holds many (128 or
    more): ``"\\u4e00..."`` is the same text as raw UTF-8 (issue 21 F1, third round)."""
    if not has_at_least(data, (b"\\u",), 128):
        return data
    out = []
    lo = 0
    while lo < len(data):  # in 64 KiB pieces (a checkpoint between), cut before an escape
        _spend()
        hi = min(len(data), lo + _TOKEN_WINDOW)
        cut = data.rfind(b"\\", max(lo, hi - 10), hi)
        if hi < len(data) and cut > lo:
            hi = cut
        piece = data[lo:hi]
        lo = hi
        if piece.isascii():
            try:  # C speed: undoes exactly the \\u and \\U escapes, every other byte kept
                out.append(piece.decode("raw_unicode_escape").encode("utf-8", "replace"))
                continue
            except UnicodeDecodeError:
                pass  # a "\\u" not followed by four hex digits: one escape at a time
        out.append(_JSON_U.sub(_json_char, piece))
    return b"".join(out)


def any_alphabet(data: bytes, allowance: int) -> EncodedHit | None:
    """The general checks: random-looking text over any alphabet, bits and ``0x`` lists, and
    uuencoded lines in HTML text (checked with character references undone); JSON ``\\u``
    escapes are undone for the one-character-per-byte look."""
    if len(data) < allowance:
        # exact (the request side's header values and URL parts are short): every check in
        # ``_any_alphabet`` needs ``allowance`` characters (``low_entropy_forms``, ``random_text``,
        # ``encoded_total``: a length test; ``_uuencoded``: a run that long), and undoing
        # escapes or character references only ever shortens the text
        return None
    return _any_alphabet(data, allowance)


def _any_alphabet(data: bytes, allowance: int) -> EncodedHit | None:
    """``any_alphabet``'s checks, whatever the length."""
    hit = low_entropy_forms(data, allowance) or random_text(data, allowance)
    if hit is None:
        plain = json_unescaped(data)
        if plain is not data:
            hit = random_text(plain, allowance)
    if hit is None and data.count(b"&") * 100 >= len(data):  # dense character references: HTML text
        plain = unescaped(data)  # numeric references too: "&#x51;&#x55;..." spelling base64 is base64
        if len(data) - len(plain) < 64:
            # a few references undone ("&&" in a script, an "&amp;" in a link): a payload they
            # could hide would still be long runs the checks above saw
            return None
        hit = (_uuencoded(plain, allowance) or low_entropy_forms(plain, allowance) or random_text(plain, allowance)
               or (encoded_total(plain, allowance) if b"&#" in data else None))
    return hit


_PIECE = re.compile(rb"[A-Za-z0-9+/_\-]+={0,2}")


def find_encoded_split(
    values: Iterable[bytes], threshold: int, *, min_piece: int = 12, strict: bool = False,
    tokens_apart: bool = False,
) -> EncodedHit | None:
    """A payload split over many fields: the concatenation of every value that is itself an
    encoded-alphabet piece (at least ``min_piece`` characters), analysed as one run; then all
    values joined by spaces, analysed as broken-up text. ``tokens_apart`` (a JSON document):
    values no longer than a hash (``MAX_TOKEN``) are left to ``encoded_total``, which counts
    such tokens at a discount (a job list's ids, firmware hashes)."""
    values = list(values)
    if tokens_apart:
        values = [v for v in values if len(v) > MAX_TOKEN]
    pieces = [v.rstrip(b"=") for v in values if len(v) >= min_piece and _PIECE.fullmatch(v)]
    if len(pieces) >= 2:
        hit = find_encoded(b"".join(pieces), threshold, strict=strict)
        if hit is not None:
            return hit
    if len(values) < 2:
        return None
    # short groups or groups with words between them ("QUJD", "<200 chars> hello world"):
    # every value, joined by spaces, judged as broken-up text (entropy decides)
    joined = b" ".join(values)
    return find_encoded(joined, threshold) if len(joined) >= threshold else None
