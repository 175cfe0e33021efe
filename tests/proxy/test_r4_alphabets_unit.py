"""Issue 21 round 4 F1/F2, the detector itself: random text over ANY alphabet is information.

``encoded.symbol_bits`` judges a window over its own alphabet (2 to 64+ symbols of any kind),
``encoded.text_bits`` adds invisible characters, ``random_text`` / ``any_alphabet`` sum the bits
over a body (sampled) and ``alphabet_chars`` over request data (every window). Random data over
any alphabet is counted at about log2(alphabet) bits a character; prose, code, markup, tables
and numbers with decimal fractions are not.
"""

from __future__ import annotations

import json
import random
import time

import pytest

from gateway.proxy import encoded
from gateway.proxy.encoded import (
    alphabet_chars,
    any_alphabet,
    encoded_chars,
    symbol_bits,
    text_bits,
)

FILE = random.Random(2104).randbytes(6 * 1024)
ALPHABETS = {
    "bits-01": "01",
    "bits-ab": "ab",
    "base4-dna": "ACGT",
    "octal-letters": "qwertyui",
    "hex-g-v": "ghijklmnopqrstuv",
    "hex-punctuation": "!#$%&()*+,-.:;<=",
    "hex-cjk": "的一是不了人我在有他这为之大来以",
    "hex-cyrillic": "абвгдежзиклмнопр",
    "hex-greek": "αβγδεζηθικλμνξοπ",
    "hex-emoji": "😀😁😂😃😄😅😆😇😈😉😊😋😌😍😎😏",
    "hex-arrows": "←↑→↓↔↕↖↗↘↙⇐⇑⇒⇓⇔⇕",
    "base32-cyrillic": "абвгдежзийклмнопрстуфхцчшщъыьэюя",
    "base32-hangul": "".join(chr(0xAC00 + 37 * i) for i in range(32)),
}


def random_text_over(alphabet: str, n: int, seed: int = 1) -> str:
    rnd = random.Random(seed)
    return "".join(rnd.choice(alphabet) for _ in range(n))


@pytest.mark.parametrize("name", sorted(ALPHABETS))
def test_random_text_over_any_alphabet_carries_log2_of_it_per_character(name):
    alphabet = ALPHABETS[name]
    expected = len(alphabet).bit_length() - 1
    for seed in range(20):
        n = 256  # a window: 256 ASCII characters, 85-384 of other scripts
        bits = symbol_bits(random_text_over(alphabet, n, seed))
        assert expected * 0.93 <= bits <= expected + 0.01, (name, seed, bits)


@pytest.mark.parametrize("name", sorted(ALPHABETS))
def test_a_page_of_a_file_over_any_alphabet_is_refused_and_counted(name):
    alphabet = ALPHABETS[name]
    width = len(alphabet).bit_length() - 1
    bits = "".join(f"{b:08b}" for b in FILE)
    digits = [alphabet[int(bits[i : i + width], 2)] for i in range(0, len(bits) - width + 1, width)]
    text = "".join(digits)
    page = ("<html><body><p>Status</p><div>" + text + "</div></body></html>").encode()
    for _ in range(5):  # random looks: every look finds it
        assert any_alphabet(page, 4096) is not None, name
    counted = alphabet_chars(page)
    assert len(FILE) * 8 // 6 * 0.9 <= counted <= len(FILE) * 8 // 6 * 1.05, (name, counted)


PROSE = {
    "en": "The printer in room 101 needs a new drum unit soon, and the toner is low. Please check tray 2. ",
    "de": "Papierformat auswählen. Der Toner ist fast leer, bitte die Kartusche ersetzen. Fach 2 ist leer. ",
    "ru": "Выберите формат бумаги. Тонер заканчивается, замените картридж. В лотке 2 нет бумаги. ",  # noqa: RUF001 - Russian on purpose
    "ja": "用紙サイズを選択してください。トナー残量が少なくなっています。給紙トレイ２に用紙がありません。",
    "zh": "请选择纸张尺寸。碳粉不足，请更换墨盒。纸盒二没有纸。网络设置只能由管理员更改。",  # noqa: RUF001
    "el": "Επιλέξτε μέγεθος χαρτιού. Το τόνερ τελειώνει, αντικαταστήστε την κασέτα. ",  # noqa: RUF001
    "ko": "용지 크기를 선택하십시오. 토너가 부족합니다. 카트리지를 교체하십시오. 2번 용지함에 용지가 없습니다. ",
    "emoji-chat": "Drucker bereit 👍 Toner leer 😞 Papier nachgelegt ✅ danke 🙏 ",
}


@pytest.mark.parametrize("lang", sorted(PROSE))
def test_prose_in_any_language_squeezed_or_not_carries_nothing(lang):
    rnd = random.Random(lang)
    sentences = [s for s in PROSE[lang].replace("。", "。|").replace(". ", ".|").split("|") if s]
    text = "".join(rnd.choice(sentences) for _ in range(400))
    for body in (text, text.replace(" ", ""), json.dumps({"labels": text.split(".")}, ensure_ascii=False)):
        data = body.encode()
        assert alphabet_chars(data) == 0, lang
        assert all(any_alphabet(data, 1024) is None for _ in range(5)), lang


def test_code_tables_templates_and_coordinates_carry_nothing():
    rnd = random.Random(3)
    bodies = [
        b"<tr><td>" + b"</td></tr><tr><td>".join(b"%012d" % i for i in range(2000)) + b"</td></tr>",  # counters
        ",".join(str(i * 7 % 256) for i in range(3000)).encode(),  # a lookup table
        ("ghij" * 4000).encode(),  # a repeated pattern: 4 symbols, nothing new
        "".join(rnd.choice(["ab", "ba", "abba"]) for _ in range(4000)).encode(),  # a template's few pieces
        ("M" + " ".join(f"L {rnd.uniform(0, 48):.6f} {rnd.uniform(-48, 48):.6f}" for _ in range(2000))).encode(),
        ("l" + "l".join(f"{rnd.uniform(0, 48):.6f}-{rnd.uniform(0, 48):.6f}" for _ in range(2000))).encode(),
        json.dumps({"history": [{"day": d, "black": 100 - d // 4} for d in range(500)]}).encode(),
        ("\u200d".join("👨👩👧" for _ in range(40)) + "\u00ad").encode(),  # a few joiners and a soft hyphen
    ]
    for body in bodies:
        assert alphabet_chars(body) < 64, body[:60]
        assert all(any_alphabet(body, 1024) is None for _ in range(5)), body[:60]


def test_invisible_characters_count_their_bits_in_a_run_or_between_letters():
    bits = "".join(f"{b:08b}" for b in FILE[:1000])
    run = "".join("\u200b" if c == "1" else "\u200c" for c in bits)
    assert text_bits(run) == len(run)  # 1 bit each
    between = "".join(a + b for a, b in zip("The printer is ready. " * 400, run, strict=False))
    assert text_bits(between) == len(run)
    four = "".join("\u200b\u200c\u200d\u2060"[int(bits[i : i + 2], 2)] for i in range(0, len(bits), 2))
    assert text_bits(four) == 2 * len(four)  # 4 distinct: 2 bits each
    assert 8000 // 6 * 0.99 <= alphabet_chars(("note" + run).encode()) <= 8000 // 6


def test_js_octal_escapes_are_bytes():
    page = ('var s="' + "".join(f"\\{c:03o}" for c in FILE) + '";').encode()
    assert any_alphabet(page, 4096) is not None
    in_json = json.dumps({"s": "".join(f"\\{c:03o}" for c in FILE[:1500])}).encode()  # backslashes doubled
    assert any_alphabet(in_json, 1024) is not None
    assert encoded_chars(in_json) >= 2048
    assert encoded.number_list_bytes(b'"a\\n\\t\\0b"' * 100) == 0  # ordinary escapes


def test_large_pages_over_small_alphabets_are_judged_quickly():
    """The tester's 4 MB page (a 1.9 MB file as hex over g..v) and 4 MB of ordinary text: the
    checks stop at the allowance, and ordinary text costs one set per look."""
    big = random.Random(8).randbytes(1900 * 1024).hex().translate(str.maketrans("0123456789abcdef", "ghijklmnopqrstuv"))
    page = ("<p>status</p><p id=d>" + big + "</p>").encode()
    prose = (PROSE["en"] * 45000).encode()
    with encoded.analysis_budget():
        t = time.thread_time()
        assert any_alphabet(page, 4096) is not None
        assert any_alphabet(prose, 4096) is None
        spent = time.thread_time() - t
    assert spent < encoded.ANALYSIS_BUDGET_S, spent
