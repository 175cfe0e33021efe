"""The cheap paths of the download checks decide exactly what the full checks decide.

Issue 21 item 5 made the checks cheaper without weakening them: runs of an encoding's
alphabet are found by a regular expression over the member marks (instead of a ``bytes.find``
per run), a body's total skips a run whose very characters were already judged, and a body
judged before is recognised by comparing it in full (the last few MB) or by its keyed digest.
Each test compares the fast path with the plain one (the previous code, kept here as the
reference) over the adversarial payloads and random mixtures of them, or shows that a body
that differs in one byte is judged afresh.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import random
from collections import Counter
from collections.abc import Iterator

import pytest
from mitmproxy import http
from mitmproxy.test import tflow

from gateway.proxy.addons.block_downloads import BlockDownloads, BodyVerdicts
from gateway.proxy.encoded import (
    _B64_ALPHA,
    _BIN_ALPHA,
    _JOINERS,
    _LIST_ALPHA,
    _SAMPLE,
    _SHORT_ENTROPY,
    MAX_TOKEN,
    MIN_ENTROPY,
    TOKEN_DISCOUNT,
    EncodedHit,
    _Alphabet,
    _entropy_at_least,
    _harmless_piece,
    _run_kind,
    _runs_at_least,
    _wordlike,
    encoded_total,
    has_at_least,
)
from gateway.proxy.fail_closed import Pipeline
from gateway.proxy.limits import ProxyLimits


def reference_runs(data: bytes, alpha: _Alphabet, length: int) -> Iterator[tuple[int, int]]:
    """The run search before the regular expression (one ``bytes.find`` per run)."""
    marks = data.translate(alpha.table)
    needle = b"1" * length
    pos = marks.find(needle)
    while pos >= 0:
        end = marks.find(b"0", pos + length)
        end = len(marks) if end < 0 else end
        yield pos, end
        pos = marks.find(needle, end)


def reference_total(data: bytes, allowance: int, *, min_run: int = 64, allow_data=None) -> EncodedHit | None:
    """``encoded_total`` before the fast path (every run looked at, repeated or not)."""
    if len(data) < allowance:
        return None
    total = 0
    kinds: Counter[str] = Counter()
    seen: set[bytes] = set()
    for start, end in reference_runs(data, _B64_ALPHA, min_run):
        if len(set(data[end - 32 : end])) < 12:
            continue
        raw = data[start:end]
        at = raw.rfind(b"base64,")
        if at >= 0:
            raw = raw[at + 7 :]
        run = raw.translate(None, _JOINERS)
        if len(run) < min_run or run in seen or _harmless_piece(run, allow_data):
            continue
        seen.add(run)
        kind = _run_kind(run)
        if kind != "hex" and _wordlike(run):
            continue
        if _entropy_at_least(run[:_SAMPLE], MIN_ENTROPY[kind] if len(run) >= 256 else _SHORT_ENTROPY[kind]):
            weight = len(run) // TOKEN_DISCOUNT if len(run) <= MAX_TOKEN else len(run)
            total += weight
            kinds[kind] += weight
            if total >= allowance:
                return EncodedHit(kinds.most_common(1)[0][0] + "_pieces", total)
    return None


FILE = random.Random(5521).randbytes(9000)
B64 = base64.b64encode(FILE)
ROW = b"<tr><td>counter</td><td>" + b"1234567890" * 7 + b"</td></tr>\n"


def _fragments(rnd: random.Random) -> list[bytes]:
    """Pieces an attacker or a real page puts into a body."""
    at = rnd.randrange(0, len(B64) - 400)
    n = rnd.choice([40, 63, 64, 65, 70, 88, 89, 96, 120, 300, 3000])
    piece = B64[at : at + n]
    return [
        piece,
        b"<div>" + piece + b"</div>",
        b'"' + piece[: n // 2] + b'"+"' + piece[n // 2 :] + b'"',
        piece[: n // 2] + b"\r\n" + piece[n // 2 :],
        FILE[at % 4000 : at % 4000 + n // 2].hex().encode(),
        base64.b32encode(FILE[at % 4000 : at % 4000 + n // 2]),
        ROW,
        b"1234567890" * rnd.randint(6, 12),
        b",".join(str(b).encode() for b in FILE[:rnd.randint(20, 80)]),
        b"<p>The printer is ready; toner is at 72 percent and the tray holds letter paper.</p>",
        b"data:image/png;base64," + piece,
        b"x" * rnd.randint(60, 200),
        b"sha384-" + base64.b64encode(FILE[at % 500 : at % 500 + 48]),
        b"Abcdefghijklmnopqrstuvwxyz0123456789" * 3,
    ]


@functools.cache
def _mixtures(count: int) -> list[bytes]:
    pages = []
    for seed in range(count):
        rnd = random.Random(seed)
        parts = []
        for _ in range(rnd.randint(5, 120)):
            choices = _fragments(rnd)
            part = rnd.choice(choices)
            parts.append(part)
            if rnd.random() < 0.3:  # repeated pieces: a table's rows, a token sent again
                parts.extend([part] * rnd.randint(1, 30))
        pages.append(b"<html><body>" + b"\n".join(parts) + b"</body></html>")
    return pages


ADVERSARIAL = [
    b"<html><body>" + b"".join(b"<div class=x>%s</div>\n<p>status</p>\n" % B64[i : i + 3000]
                               for i in range(0, len(B64), 3000)) + b"</body></html>",
    b"<html><body>" + b"".join(b"<td>%s</td>" % B64[i : i + 100] for i in range(0, len(B64), 100)) + b"</body></html>",
    b"<html><body>" + b"".join(b"<i>%s</i>" % B64[i : i + 88] for i in range(0, len(B64), 88)) + b"</body></html>",
    b"<html><body>" + b"".join(b"<i>%s</i>" % B64[i : i + 64] for i in range(0, len(B64), 64)) * 3 + b"</body></html>",
    b"<html><body><table>" + ROW * 1150 + b"</table></body></html>",
    b"<html><body><table>" + ROW * 500 + b"<div>" + B64[:5000] + b"</div>" + ROW * 500 + b"</table></body></html>",
    b"<script>" + b"".join(b"a.push('%s');\n" % B64[i : i + 500] for i in range(0, len(B64), 500)) + b"</script>",
    b"<p>" + FILE[:4000].hex().encode() + b"</p>",
    b"<p>" + base64.b32encode(FILE[:4000]) + b"</p>",
]


@pytest.mark.parametrize("length", [16, 64, 88, 96, 256])
@pytest.mark.parametrize("alpha", [_B64_ALPHA, _LIST_ALPHA, _BIN_ALPHA], ids=["base64", "list", "bits"])
def test_the_run_search_finds_exactly_the_runs_the_plain_search_finds(alpha, length):
    for page in [*ADVERSARIAL, *_mixtures(15), b"", b"A" * 300, b"A" * 63]:
        assert list(_runs_at_least(page, alpha, length)) == list(reference_runs(page, alpha, length))


@pytest.mark.parametrize("allowance", [256, 1024, 4096])
def test_the_total_with_repeats_skipped_is_the_plain_total(allowance):
    refused = 0
    for page in [*ADVERSARIAL, *_mixtures(60)]:
        for min_run in (64, 96):
            expected = reference_total(page, allowance, min_run=min_run)
            assert encoded_total(page, allowance, min_run=min_run) == expected
            refused += expected is not None
    assert refused > 20  # the corpus does reach the allowances (the comparison is not vacuous)


@pytest.mark.parametrize("needles", [(b",", b";"), (b"--",), (b"&#",), (b"0x", b"0X")])
def test_the_early_stopping_count_agrees_with_bytes_count(needles):
    rnd = random.Random(21)
    pages = [bytes(rnd.choice(b"-,;&#0xX a") for _ in range(rnd.randint(0, 300))) for _ in range(1500)]
    for page in [*pages, *ADVERSARIAL, *_mixtures(15)]:
        for count in (0, 1, 2, 5, 32, 64, 512):
            assert has_at_least(page, needles, count) == (sum(page.count(n) for n in needles) >= count)


def test_a_table_of_long_numbers_is_not_an_encoded_file_and_is_cheap_to_judge():
    page = ADVERSARIAL[4]
    assert encoded_total(page, 4096) is None
    # the same page with a file's worth of base64 between its rows is refused
    assert encoded_total(ADVERSARIAL[5], 4096) is not None


def _response(body: bytes) -> tuple[http.Request, http.Response]:
    flow = tflow.tflow()
    flow.response = http.Response.make(200, body, {"content-type": "text/html"})
    return flow.request, flow.response


def test_a_body_judged_before_is_not_mistaken_for_one_that_differs_only_in_its_middle():
    block = BlockDownloads(ProxyLimits())
    head, tail = b"<html><body>" + b"<p>status ready</p>" * 10, b"<p>end of page</p>" * 10 + b"</body></html>"
    clean = head + b"<p>" + b"toner ok. " * 700 + b"</p>" + tail
    smuggled = head + b"<p>" + B64[: len(clean) - len(head) - len(tail) - 7] + b"</p>" + tail
    assert len(clean) == len(smuggled) and clean[:64] == smuggled[:64] and clean[-64:] == smuggled[-64:]
    assert block.check(*_response(clean)) is None
    assert block.check(*_response(clean)) is None  # the repeat: remembered
    verdict = block.check(*_response(smuggled))
    assert verdict is not None and verdict[0] == "download.encoded_blob"
    # and the other way round: a refused body does not make its clean twin refused
    block = BlockDownloads(ProxyLimits())
    assert block.check(*_response(smuggled)) is not None
    assert block.check(*_response(clean)) is None


def test_a_small_status_page_served_again_is_judged_once(monkeypatch):
    """The browse model's assets (2-3 KB) are judged once, not on every page load (issue 21 item 5)."""
    block = BlockDownloads(ProxyLimits())
    judged: list[int] = []
    plain = block._body_verdict

    def counting(mtype: str, body: bytes, lim: ProxyLimits) -> object:
        judged.append(len(body))
        return plain(mtype, body, lim)

    monkeypatch.setattr(block, "_body_verdict", counting)
    page = b"<html><body>" + b"<p>toner black 72 %, cyan 55 %; trays ready</p>" * 50 + b"</body></html>"
    for _ in range(3):
        assert block.check(*_response(page)) is None
    assert judged == [len(page)]
    changed = page[:-20] + b"X" + page[-19:]  # one byte differs: judged afresh
    assert block.check(*_response(changed)) is None
    assert judged == [len(page), len(page)]


def test_bodies_past_the_compared_bytes_are_still_remembered_by_their_digest():
    verdicts = BodyVerdicts(exact_bytes=64 * 1024)
    lim = ProxyLimits()
    bodies = [bytes([65 + i]) * 20_000 for i in range(8)]  # 160 KB: more than the compared bytes
    for i, body in enumerate(bodies):
        verdicts.put(body, "text/html", lim, ("rule", str(i), len(body)))
    for i, body in enumerate(bodies):
        assert verdicts.lookup(body, "text/html", lim) == ("rule", str(i), len(body))
    assert verdicts.lookup(bodies[0], "text/css", lim) is BodyVerdicts.MISSING
    assert verdicts.lookup(bodies[0][:-1] + b"B", "text/html", lim) is BodyVerdicts.MISSING


# --- the pipeline as one mitmproxy addon ------------------------------------------------------

class _Recorder:
    def __init__(self, name: str, calls: list[str], *, fail: bool = False, slow: bool = False) -> None:
        self.name, self._calls, self._fail, self._slow = name, calls, fail, slow

    def request(self, flow: object) -> object:
        if self._fail:
            raise RuntimeError("escaped")
        if self._slow:
            return self._later()
        self._calls.append(self.name)
        return None

    async def _later(self) -> None:
        await asyncio.sleep(0)
        self._calls.append(self.name)


def test_the_pipeline_calls_every_addon_in_order_awaiting_each_before_the_next():
    calls: list[str] = []
    pipe = Pipeline([_Recorder("a", calls), _Recorder("b", calls, slow=True), _Recorder("c", calls),
                     _Recorder("d", calls, fail=True), _Recorder("e", calls)])
    assert not hasattr(pipe, "response")  # no addon has it: mitmproxy has nothing to call
    result = pipe.request(object())  # type: ignore[attr-defined]
    assert calls == ["a"] and result is not None  # "b" must be awaited before "c" runs
    asyncio.run(result)
    assert calls == ["a", "b", "c", "e"]  # an exception escaping "d" does not skip "e" (the audit addon)


def test_the_pipeline_stays_plain_when_no_hook_is_async():
    calls: list[str] = []
    pipe = Pipeline([_Recorder("a", calls), _Recorder("b", calls)])
    assert pipe.request(object()) is None and calls == ["a", "b"]  # type: ignore[attr-defined]

