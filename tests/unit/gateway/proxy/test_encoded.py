"""The encoded-payload detectors (gateway/proxy/encoded.py), public functions only, on hand-made
inputs: a few positive and negative cases per detector and the thresholds they state.

The broad corpus (every encoding wrapped/split, real EWS pages, vendor bundles) lives in
``tests/proxy/test_encoded.py``; this module pins each public function's contract.
"""

from __future__ import annotations

import base64
import random

import pytest

from gateway.proxy import encoded
from gateway.proxy.encoded import (
    EncodedHit,
    any_alphabet,
    encoded_chars,
    encoded_total,
    find_encoded,
    find_encoded_split,
    low_entropy_forms,
    number_list_bytes,
    one_char_per_byte_chars,
    random_text,
    unescaped,
)

DATA = random.Random(16).randbytes(1500)  # a file's bytes (deterministic)
B64 = base64.b64encode(DATA)  # 2000 characters
PROSE = (b"The printer reports a paper jam in tray 2. Open the front cover, remove the sheet and close "
         b"the cover again; the job resumes on its own. Toner levels are shown on the status page. ") * 30


def test_hit_describes_itself() -> None:
    assert EncodedHit("escaped_hex", 120).describe() == "escaped hex data (120 characters)"


# --- find_encoded ------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "kind"), [
    (B64, "base64"),
    (base64.urlsafe_b64encode(DATA), "base64url"),
    (base64.b32encode(DATA[:800]), "base32"),
    (DATA[:800].hex().encode(), "hex"),
    ("".join(f"\\x{c:02x}" for c in DATA[:400]).encode(), "escaped_hex"),
    (" ".join(f"{c:02x}" for c in DATA[:600]).encode(), "spaced_hex"),  # threshold/2 bytes' worth
    (b"<~" + base64.a85encode(DATA[:800]) + b"~>", "ascii85"),
])
def test_find_encoded_names_the_encoding_inside_text(text: bytes, kind: str) -> None:
    body = b"<p>firmware:</p><pre>" + text + b"</pre>"
    hit = find_encoded(body, 1000)
    assert hit is not None and hit.kind == kind and hit.length >= 1000


def test_find_encoded_leaves_prose_short_runs_and_repeated_characters_alone() -> None:
    assert find_encoded(PROSE, 1000) is None
    assert find_encoded(b"token=" + B64[:500] + b" " + PROSE, 1000) is None  # under the threshold
    assert find_encoded(b"A" * 5000, 1000) is None  # one repeated character: no entropy
    assert find_encoded(b"x" * 400, 1000) is None  # shorter than half the threshold: not looked at
    ident = b"".join(b"getPrinterStatusAndTonerLevel" for _ in range(60))
    assert find_encoded(ident, 1000) is None  # joined-up words stay under base64 entropy


def test_strict_counts_any_unbroken_run_whatever_its_entropy() -> None:
    low = b"ABCD" * 400  # four characters only: far under base64 entropy
    assert find_encoded(low, 1000) is None
    hit = find_encoded(low, 1000, strict=True)
    assert hit is not None and hit.length == 1600


def test_a_data_uri_of_a_harmless_image_is_allowed_only_with_the_image_check() -> None:
    picture = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + random.Random(1).randbytes(1200)
    uri = b'<img src="data:image/png;base64,' + base64.b64encode(picture) + b'">'
    assert find_encoded(uri, 1000) is not None
    assert find_encoded(uri, 1000, allow_data=lambda data: data.startswith(b"\x89PNG")) is None
    # the same check never lets a non-image type through
    other = b'<a href="data:application/zip;base64,' + base64.b64encode(picture) + b'">'
    hit = find_encoded(other, 1000, allow_data=lambda data: True)
    assert hit is not None and hit.kind == "data_uri"


def test_byte_lists_can_be_spared() -> None:
    spaced = " ".join(f"{c:02x}" for c in DATA[:600]).encode()
    assert find_encoded(spaced, 1000) is not None
    assert find_encoded(spaced, 1000, byte_lists=False) is None


# --- find_encoded_split -----------------------------------------------------------------------

def test_a_payload_split_over_fields_is_judged_joined() -> None:
    pieces = [B64[i : i + 50] for i in range(0, len(B64), 50)]
    assert all(find_encoded(p, 1000) is None for p in pieces)
    hit = find_encoded_split(pieces, 1000)
    assert hit is not None and hit.kind.startswith("base64")
    assert find_encoded_split([b"alice", b"printer-3", b"tray 2", b"A4"] * 50, 1000) is None
    # tokens_apart: hash-sized values are left to the totals
    assert find_encoded_split(pieces, 1000, tokens_apart=True) is None


# --- encoded_total / encoded_chars ------------------------------------------------------------

def test_encoded_total_adds_up_runs_each_under_the_per_run_threshold() -> None:
    body = b"".join(b"<div>" + B64[i : i + 200] + b"</div>" for i in range(0, len(B64), 200))
    assert find_encoded(body, 1000) is None  # each run alone is short
    hit = encoded_total(body, 1000)
    assert hit is not None and hit.kind == "base64_pieces" and hit.length >= 1000
    assert encoded_total(body, 1000 * 10) is None  # the total is below a larger allowance
    assert encoded_total(PROSE, 1000) is None


def test_encoded_total_counts_a_repeated_run_once_and_hash_sized_tokens_at_a_quarter() -> None:
    rng = random.Random(2)
    run = B64[:300]
    repeated = b" ".join([run] * 20)
    assert encoded_total(repeated, 1000) is None  # 300 new characters, however often repeated
    hashes = b" ".join(base64.b64encode(rng.randbytes(48)) for _ in range(30))  # 64 characters each
    assert encoded_total(hashes, 1000) is None  # 30 x 64 / 4 = 480
    assert encoded_total(hashes, 400) is not None


def test_encoded_chars_counts_encoded_looking_characters_up_to_the_cap() -> None:
    assert encoded_chars(PROSE) == 0
    assert encoded_chars(b"x=" + B64 + b"&y=1") == len(B64)
    assert encoded_chars(b"a=" + B64 + b"&b=" + B64) == len(B64)  # each distinct run once
    assert encoded_chars(b"x=" + B64[:90]) == 0  # under min_run
    assert encoded_chars(b"x=" + B64[:90], min_run=64) == 90
    assert encoded_chars(b"x=" + B64, cap=100) >= 100


# --- numbers, bits, any alphabet --------------------------------------------------------------

def test_number_list_bytes_finds_bytes_written_as_decimal_numbers() -> None:
    values = list(DATA[:200])
    assert number_list_bytes(",".join(map(str, values)).encode()) == 200
    assert number_list_bytes(b"".join(b"&#%d;" % v for v in values)) == 200
    assert number_list_bytes(b"".join(b"--a%d:%d;" % (i, v) for i, v in enumerate(values))) == 200
    assert number_list_bytes(",".join(str(i) for i in range(200)).encode()) == 0  # a sorted table
    assert number_list_bytes(b"1,2,3,4,5") == 0  # too short
    assert number_list_bytes(PROSE) == 0


def test_low_entropy_forms_bits_and_hex_lists() -> None:
    bits = "".join(f"{c:08b}" for c in DATA[:300]).encode()
    hit = low_entropy_forms(bits, 1000)
    assert hit is not None and hit.kind == "binary_digits"
    hexes = ",".join(f"0x{c:02x}" for c in DATA[:300]).encode()
    hit = low_entropy_forms(hexes, 1000)
    assert hit is not None and hit.kind == "hex_list"
    assert low_entropy_forms(b"0" * 2000, 1000) is None  # one digit only
    assert low_entropy_forms(PROSE, 1000) is None
    assert low_entropy_forms(bits[:500], 1000) is None  # shorter than the allowance


def test_random_text_finds_encodings_over_other_alphabets_but_not_prose_or_code() -> None:
    z85ish = base64.b85encode(DATA * 2)
    hit = random_text(z85ish, 2048)
    assert hit is not None and hit.kind == "random_text"
    assert random_text(PROSE, 2048) is None
    code = b"function f(a, b) { return a + b; }\n" * 200
    assert random_text(code, 2048) is None
    assert random_text(z85ish[:1000], 2048) is None  # shorter than the allowance


def test_one_character_per_byte_in_another_script_is_counted() -> None:
    cyrillic = "".join(chr(0x400 + b) for b in DATA).encode()
    assert one_char_per_byte_chars(cyrillic) > 1000
    russian = ("Принтер сообщает о замятии бумаги во втором лотке. Откройте крышку. " * 60).encode()  # noqa: RUF001
    assert one_char_per_byte_chars(russian) == 0
    assert one_char_per_byte_chars(PROSE) == 0


def test_unescaped_undoes_character_references_like_a_browser() -> None:
    assert unescaped(b"a &lt;b&gt; &amp;amp; &#x420;&#1056; &quot;&#39;") == "a <b> &amp; \u0420\u0420 \"'".encode()
    assert unescaped(b"&#xD800;&#x110000;") == "\ufffd\ufffd".encode()
    plain = b"no references"
    assert unescaped(plain) is plain


def test_any_alphabet_sees_through_character_references() -> None:
    bits = "".join(f"{c:08b}" for c in DATA[:300]).encode()
    hit = any_alphabet(bits, 1000)
    assert hit is not None and hit.kind == "binary_digits"
    assert any_alphabet(PROSE, 1000) is None
    # bits written as character references: plain only once the references are undone
    referenced = b"".join(b"&#%d;" % c for c in bits)
    assert low_entropy_forms(referenced, 1000) is None and random_text(referenced, 1000) is None
    hit = any_alphabet(referenced, 1000)
    assert hit is not None and hit.kind == "binary_digits"


_FILE = random.Random(7).randbytes(3000)
_FORMS = {  # every form any_alphabet catches once it is long enough
    "bits": "".join(f"{b:08b}" for b in _FILE).encode(),
    "hex list": b",".join(b"0x%02x" % b for b in _FILE),
    "decimal list": b",".join(b"%d" % b for b in _FILE),
    "character references": b"".join(b"&#%d;" % (0x3000 + b) for b in _FILE),
    "base85": base64.b85encode(_FILE),
    "one CJK character per byte": "".join(chr(0x4E00 + b) for b in _FILE).encode(),
}


@pytest.mark.parametrize("form", sorted(_FORMS))
def test_any_alphabet_answers_text_shorter_than_its_allowance_as_its_full_checks_do(form: str) -> None:
    """The length fast path (request header values and URL parts are short): one character short
    of the allowance every check finds nothing, the same form at the allowance and longer is found."""
    allowance = 1024
    text = _FORMS[form]
    assert any_alphabet(text, allowance) is not None
    short = text[: allowance - 1]
    assert encoded._any_alphabet(short, allowance) is None
    assert any_alphabet(short, allowance) is None


def test_encoded_chars_of_nothing_is_nothing() -> None:
    assert encoded_chars(b"") == 0 and encoded_chars(b"", cap=0) == 0
