"""The encoded-payload detector and the content sniffers alone: every encoding is found (also
wrapped or split), and what real EWS pages and forms carry is not."""

from __future__ import annotations

import base64
import binascii
import json
import quopri
import random
import struct
import zlib
from collections import Counter
from pathlib import Path

import pytest

from gateway.proxy import sniff
from gateway.proxy.encoded import (
    any_alphabet,
    encoded_chars,
    encoded_total,
    find_encoded,
    find_encoded_split,
    unescaped,
)
from gateway.proxy.svg_check import svg_problem
from lab.ews.assets import backup_zip, logo_png, png

ROOT = Path(__file__).resolve().parents[2]
DATA = random.Random(21).randbytes(3000)  # a file's bytes (deterministic)
B64 = base64.b64encode(DATA)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (B64, "base64"),
        (base64.urlsafe_b64encode(DATA), "base64url"),
        (base64.b32encode(DATA), "base32"),
        (DATA.hex().encode(), "hex"),
        (DATA.hex().upper().encode(), "hex"),
        (base64.encodebytes(DATA), "base64"),  # MIME: 76-character lines
        (base64.encodebytes(DATA).replace(b"\n", b"\r\n"), "base64"),
        (json.dumps({"fw": base64.encodebytes(DATA).decode()}).encode(), "base64"),  # "\n" escapes
        (b'var a="' + b'"+\n"'.join(B64[i : i + 60] for i in range(0, len(B64), 60)) + b'";', "base64"),
        ("".join(f"\\x{c:02x}" for c in DATA).encode(), "escaped_hex"),
        ("".join(f"%{c:02X}" for c in DATA).encode(), "escaped_hex"),
        (" ".join(f"{c:02x}" for c in DATA).encode(), "spaced_hex"),
        (", ".join(f"0x{c:02x}" for c in DATA).encode(), "spaced_hex"),
        (quopri.encodestring(DATA), "quoted_printable"),
        (b"".join(binascii.b2a_uu(DATA[i : i + 45]) for i in range(0, len(DATA), 45)), "uuencode"),
        (b"begin 644 x.bin\n" + b"".join(binascii.b2a_uu(DATA[i : i + 45]) for i in range(0, 450, 45)) + b"end\n", "uuencode"),
        (base64.a85encode(DATA, adobe=True), "ascii85"),
        (b"<p>see <img src='data:application/zip;base64," + base64.b64encode(backup_zip("a", "b")) + b"'>", "data_uri"),
    ],
)
def test_every_encoding_of_a_file_is_found(text, kind):
    hit = find_encoded(text, 256)
    assert hit is not None and hit.kind == kind, hit
    assert hit.length >= 256


def test_a_file_split_over_many_short_values_is_found_in_their_concatenation():
    parts = [B64[i : i + 100] for i in range(0, len(B64), 100)]
    assert all(find_encoded(p, 256) is None for p in parts)
    hit = find_encoded_split(parts, 256)
    assert hit is not None and hit.kind == "base64"


def test_decimal_byte_arrays_are_found():
    text = ("[" + ",".join(str(c) for c in DATA) + "]").encode()
    assert find_encoded(text, 256) is not None


def test_under_the_threshold_nothing_counts():
    assert find_encoded(B64[:200], 256) is None
    assert find_encoded(B64[:3000], 4096) is None


def test_strict_mode_counts_an_unbroken_run_whatever_its_entropy():
    zeros = base64.b64encode(bytes(3000))  # "AAAA...": no information, but a file all the same
    assert find_encoded(zeros, 256) is None
    assert find_encoded(zeros, 256, strict=True) is not None


def real_pages() -> list[bytes]:
    """Text a printer EWS, a browser and the proxy's own pages really carry."""
    from gateway.proxy.addons.banner import banner_html  # noqa: F401  (module text below)

    texts = [p.read_bytes() for p in (ROOT / "gateway" / "proxy").glob("*.py")]
    texts += [p.read_bytes() for p in (ROOT / "lab" / "ews").glob("*.py")]
    texts.append((ROOT / "README.md").read_bytes())
    for css in Path("/usr/share/cups/doc-root").glob("*.css"):
        texts.append(css.read_bytes())
    for html in list(Path("/usr/share/cups/doc-root").glob("**/*.html"))[:40]:
        texts.append(html.read_bytes())
    return texts


BENIGN = [
    # an address-book listing, a counters API, a settings form, minified JS, CSS sprites
    json.dumps([{"name": f"Person {i}", "email": f"p{i}@example.com", "fax": f"+49 30 {i:06d}"} for i in range(300)]).encode(),
    json.dumps({"counters": {f"tray{i}": i * 117 for i in range(200)}, "ids": [f"tray{i}" for i in range(400)]}).encode(),
    b"&".join(b"opt%d=value%d" % (i, i) for i in range(500)),
    b"!function(e,t){var n=[" + b",".join(b"'item%d'" % i for i in range(800)) + b"];e.init(n)}(window,document);",
    b".icon{background:url(/img/sprite.png)}" * 200,
    b"<table>" + b"".join(b"<tr><td width=20 height=10 colspan=2>%d</td></tr>" % i for i in range(2000)) + b"</table>",
    b"sha256-" + b"0123456789abcdef" * 4 + b" csrf=" + b"a1B2" * 16,  # integrity hashes, tokens
    ("<p>" + "東京都千代田区 プリンター設定 " * 300 + "</p>").encode(),
    b"<img src='data:image/png;base64," + base64.b64encode(logo_png()) * 1 + b"'>",
]


@pytest.mark.parametrize("text", BENIGN + real_pages())
def test_real_pages_and_forms_carry_no_encoded_file(text):
    def harmless(data: bytes) -> bool:
        return sniff.clean_image_kind(data) is not None

    assert find_encoded(text, 4096, allow_data=harmless) is None


@pytest.mark.parametrize("text", BENIGN[:4])
def test_real_form_data_is_not_an_upload_either(text):
    assert find_encoded(text, 256) is None


def test_a_large_image_in_a_data_uri_is_an_image_not_a_file():
    big_logo = base64.b64encode(logo_png()) * 1
    page = b"<img src='data:image/png;base64," + big_logo + b"'>" + b"x" * 10
    assert find_encoded(page, 64, allow_data=lambda d: sniff.clean_image_kind(d) is not None) is None
    polyglot = base64.b64encode(logo_png() + backup_zip("a", "b"))
    page = b"<img src='data:image/png;base64," + polyglot + b"'>"
    hit = find_encoded(page, 256, allow_data=lambda d: sniff.clean_image_kind(d) is not None)
    assert hit is not None and hit.kind == "data_uri"


# --- sniffing -----------------------------------------------------------------------------

def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


@pytest.mark.parametrize(
    ("data", "clean"),
    [
        (logo_png(), "png"),
        (logo_png() + backup_zip("a", "b"), None),  # PNG + ZIP polyglot
        (logo_png()[:-12] + png_chunk(b"ziPp", backup_zip("a", "b")) + logo_png()[-12:], None),
        (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "gif"),
        (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;" + backup_zip("a", "b"), None),
        (b"\xff\xd8\xff\xe0" + bytes(20) + b"\xff\xd9", "jpeg"),
        (b"\xff\xd8\xff\xe0" + bytes(20) + b"\xff\xd9" + backup_zip("a", "b"), None),
    ],
)
def test_an_image_is_clean_only_when_it_is_nothing_but_the_image(data, clean):
    assert sniff.clean_image_kind(data) == clean


def test_a_font_is_clean_only_when_its_own_header_accounts_for_every_byte():
    header = struct.pack(">IHHHH", 0x00010000, 1, 16, 0, 0)
    table = bytes(range(64))
    ttf = header + struct.pack(">4sIII", b"glyf", 0, 28, len(table)) + table
    assert sniff.clean_font_kind(ttf) == "ttf"
    assert sniff.clean_font_kind(ttf + backup_zip("a", "b")) is None  # TTF + ZIP
    woff = b"wOFF" + b"\x00\x01\x00\x00" + struct.pack(">I", 44) + bytes(32)
    assert sniff.clean_font_kind(woff) == "woff"
    assert sniff.clean_font_kind(woff + b"extra") is None


@pytest.mark.parametrize(
    ("data", "anywhere", "kind"),
    [
        (b"\n%!PS-Adobe-3.0\nshowpage", False, "postscript"),
        (b"\r\n\x1b%-12345X@PJL\r\n", False, "pjl"),
        (b"note: %PDF-1.7 inline", True, None),  # words about a PDF, not one
        (b"Printer says %PDF-1.4 error on job", True, None),
        (b"Users report jobs starting with %!PS fail", True, None),
        (b"comment %PDF-1.7 1 0 obj << >> endobj", True, "pdf"),  # the format's structure
        (b"junk %PDF-1.7\n%\xe2\xe3\xcf\xd3\n", True, "pdf"),  # binary
        (b"junk %!PS-Adobe-3.0 /Helvetica findfont 12 scalefont setfont", True, "postscript"),
        (b"hello\n  %!PS-Adobe-3.0\nshowpage\n", True, "postscript"),  # a real job after leading junk
        (b"\x00\x01 %!PS", True, "postscript"),
        (b"note: %PDF-1.7 inline", False, None),
        (b"<p>The @PJL language is documented in the manual.</p>", False, None),
        (b"-----BEGIN CERTIFICATE-----\nMIIB", False, "pem"),
    ],
)
def test_jobs_and_documents_are_found_after_leading_text(data, anywhere, kind):
    assert sniff.job_or_document_kind(data, anywhere=anywhere) == kind


def test_short_magics_at_the_start_of_text_are_text():
    assert sniff.transfer_kind(b"MZ-1234 second floor") is None
    assert sniff.transfer_kind(b"MZ\x90\x00\x03\x00") == "exe"


@pytest.mark.parametrize(
    ("svg", "ok"),
    [
        (b"<svg xmlns='http://www.w3.org/2000/svg'><rect width='1' height='1'/></svg>", True),
        (b"<?xml version='1.0'?>\n<svg xmlns='http://www.w3.org/2000/svg'><use href='#a'/></svg>", True),
        (b"<svg><script>alert(1)</script></svg>", False),
        (b"<svg onload='x()'></svg>", False),
        (b"<svg><foreignObject><div/></foreignObject></svg>", False),
        (b"<svg><a href='javascript:x()'>a</a></svg>", False),
        (b"<!DOCTYPE svg [<!ENTITY x SYSTEM 'file:///etc/passwd'>]><svg>&x;</svg>", False),
        (b"PK\x03\x04 not an svg", False),
    ],
)
def test_svg_is_only_a_plain_image(svg, ok):
    assert (svg_problem(svg) is None) is ok


def test_an_icon_kept_as_a_script_string_is_an_image_but_an_icon_with_a_zip_is_not():
    icon = base64.b64encode(png(40, 40, noise=True))
    assert len(icon) > 4096

    def harmless(d: bytes) -> bool:
        return sniff.clean_image_kind(d) is not None

    assert find_encoded(b'var ICON = "' + icon + b'"; img.src = "data:image/png;base64," + ICON;', 4096,
                        allow_data=harmless) is None
    smuggled = base64.b64encode(png(40, 40, noise=True) + backup_zip("a", "b"))
    hit = find_encoded(b'var ICON = "' + smuggled + b'";', 4096, allow_data=harmless)
    assert hit is not None and hit.kind == "base64"


# --- encodings broken up by separators, and low-entropy encodings (issue 21 follow-up) -------
FILE = random.Random(2121).randbytes(6 * 1024)  # big enough for the download threshold too
FILE_B64 = base64.b64encode(FILE).decode()
WORDS = ["apple", "river", "stone", "cloud", "green", "music", "table", "house", "paper", "light",
         "water", "north", "smile", "dream", "plant", "glass"]


def groups(text: str, size: int, sep: str) -> str:
    return sep.join(text[i : i + size] for i in range(0, len(text), size))


BROKEN_UP = [
    pytest.param(groups(FILE_B64, 8, " "), "base64", id="b64-groups-of-8"),
    pytest.param(groups(FILE_B64, 40, " x "), "base64", id="b64-40-joined-by-x"),
    pytest.param("".join(FILE_B64[i : i + 200] + " hello world" for i in range(0, len(FILE_B64), 200)), "base64",
                 id="b64-200-plus-hello-world"),
    pytest.param(groups(FILE.hex(), 32, " "), "hex", id="hex-groups-of-32"),
    pytest.param(base64.a85encode(FILE).decode(), "ascii85", id="ascii85-bare"),
    pytest.param(base64.a85encode(FILE, wrapcol=76).decode(), "ascii85", id="ascii85-bare-wrapped"),
    pytest.param(json.dumps({"note": "".join(binascii.b2a_uu(FILE[i : i + 45]).decode()
                                             for i in range(0, len(FILE), 45))}), "uuencode", id="uu-in-json"),
    pytest.param(" ".join(str(c) for c in FILE), "byte_list", id="decimal-spaced"),
    pytest.param("\n".join(f"{c:o}" for c in FILE), "byte_list", id="octal-lines"),
    pytest.param("".join(" " if (c >> i) & 1 else "\t" for c in FILE[:3072] for i in range(8)),
                 "whitespace_binary", id="whitespace-binary"),
    pytest.param(" ".join(WORDS[c >> 4] + " " + WORDS[c & 15] for c in FILE), "word_code", id="word-code"),
]


@pytest.mark.parametrize(("text", "kind"), BROKEN_UP)
def test_broken_up_and_low_entropy_encodings_are_found_towards_the_device(text, kind):
    hit = find_encoded(text.encode(), 256, strict=True)
    assert hit is not None and hit.kind == kind, hit


@pytest.mark.parametrize(("text", "kind"), BROKEN_UP)
def test_broken_up_and_low_entropy_encodings_are_found_in_pages(text, kind):
    inner = f"<script>var t = {text};</script>" if text.startswith("{") else f"<pre>{html_escape(text)}</pre>"
    page = f"<!doctype html><html><body>{inner}</body></html>".encode()
    hit = find_encoded(page, 4096, byte_lists=False)
    assert hit is not None and hit.kind == kind, hit


def html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;")


ORDINARY_TEXT = [
    # prose, a note, a repeated status template, an indented listing, a counters table
    ("The printer reports a paper jam in tray 2. Open the front cover, remove the paper, "
     "close the cover and press OK. If the message stays, switch the printer off and on again. ") * 60,
    "Printer says %PDF-1.4 error on job 1234, please check the queue and the toner level today.",
    "Tray 1 Ready Tray 2 Ready Tray 3 Empty Toner Black 40 percent\n" * 300,
    "\n".join("\t" * (i % 4) + "    " + f"item {i}: value {i * 3}" for i in range(800)),
]


@pytest.mark.parametrize("text", ORDINARY_TEXT)
def test_ordinary_text_is_not_an_encoded_file(text):
    assert find_encoded(text.encode(), 256, strict=True) is None
    assert find_encoded(text.encode(), 4096) is None


@pytest.mark.parametrize("values", [
    [FILE_B64[i : i + 200] + " hello world" for i in range(0, len(FILE_B64), 200)],
    [FILE_B64[i : i + 8] for i in range(0, 2000, 8)],  # URL path segments of 8 characters
])
def test_a_file_split_over_fields_with_words_or_short_groups_is_found(values):
    hit = find_encoded_split([v.encode() for v in values], 256)
    assert hit is not None and hit.kind == "base64", hit


def test_ordinary_form_fields_together_are_not_a_file():
    fields = [b"Front office", b"2nd floor, room 204", b"admin@example.com", b"Europe/Berlin", b"A4",
              b"on", b"300", b"Printer in the hall next to the kitchen"] * 10
    assert find_encoded_split(fields, 256) is None


# --- totals per body, any alphabet, the session tally (issue 21 F1-F4) ----------------------

_B85 = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~"
_Z85 = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
BIG = random.Random(7).randbytes(8000)


def _pieces(encoded: bytes, template: bytes, size: int = 3000) -> bytes:
    return b"<html><body>" + b"".join(template % encoded[i : i + size] for i in range(0, len(encoded), size)) + b"</body></html>"


@pytest.mark.parametrize("page", [
    _pieces(base64.b64encode(BIG), b"<div class=x>%s</div>\n<p>status</p>\n"),
    _pieces(base64.b64encode(BIG), b'<i data-v="%s"></i><b>ok</b>\n'),
    _pieces(base64.b64encode(BIG), b"a.push(/*x*/'%s');\nvar z=1;\n"),
    _pieces(BIG.hex().encode(), b"<div>%s</div><p>status</p>"),
    _pieces(base64.b32encode(BIG), b"<div>%s</div><p>status</p>"),
    _pieces(base64.b64encode(BIG), b"<td>%s</td>", size=100),
], ids=["divs", "attrs", "js-push", "hex-divs", "base32-divs", "100-char-cells"])
def test_pieces_under_the_run_threshold_are_summed_over_the_body(page):
    assert find_encoded(page, 4096) is None  # what the per-run check alone lets through
    hit = encoded_total(page, 4096)
    assert hit is not None and hit.length >= 4096


@pytest.mark.parametrize("page", [
    b"<script>var d=`" + base64.b85encode(BIG) + b"`</script>",
    b"<pre>" + base64.b85encode(BIG).translate(bytes.maketrans(_B85, _Z85)).replace(b"&", b"&amp;").replace(b"<", b"&lt;")
    + b"</pre>",
    b"<p>" + "".join(f"{c:08b}" for c in BIG[:1024]).encode() + b"</p>",
    b"<p>" + ",".join(f"0x{c:02x}" for c in BIG[:2048]).encode() + b"</p>",
    b"<pre>" + b"".join(binascii.b2a_uu(BIG[i : i + 45]) for i in range(0, 4500, 45)).replace(b"&", b"&amp;")
    .replace(b"<", b"&lt;").replace(b">", b"&gt;") + b"</pre>",
    ("<p>" + "".join(chr(0x4E00 + c) for c in BIG) + "</p>").encode(),
    b"<script>var d='" + base64.b64encode(BIG).translate(bytes.maketrans(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        b"!#$%()*,-.:;<>?@[]^_{|}~ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn")) + b"'</script>",
], ids=["base85", "z85-html-text", "bits", "0x-list", "uuencode-html-text", "cjk-per-byte", "other-alphabet"])
def test_encodings_over_any_alphabet_are_found(page):
    hit = any_alphabet(page, 4096)
    assert hit is not None, page[:80]


@pytest.mark.parametrize("text", BENIGN + real_pages())
def test_real_pages_stay_under_the_allowances(text):
    def harmless(data: bytes) -> bool:
        return sniff.clean_image_kind(data) is not None

    assert encoded_total(text, 4096, allow_data=harmless) is None
    assert any_alphabet(text, 4096) is None


def test_the_session_tally_counts_encoded_runs_once_and_not_words_or_paths():
    piece = base64.b64encode(BIG)[:200]
    assert encoded_chars(b"memo=" + piece) == 200
    assert encoded_chars(piece + b" " + piece) == 200  # the same value again carries nothing new
    words = b"org/en-US/docs/Web/JavaScript/Reference/Global_Objects/SharedArrayBuffer/prototype/byteLength"
    assert encoded_chars(words + b"\n" + b"diffiehellmancomputesecretotherpublickeyinputencodingoutputencodingformat" * 2) == 0
    assert encoded_chars(b"x" * 500) == 0


# --- issue 21, second round: bytes as numbers, numeric references, one character per byte -----

FILE = random.Random(2112).randbytes(6000)


def _chunks(data: bytes, n: int) -> list[bytes]:
    return [data[i : i + n] for i in range(0, len(data), n)]


BYTES_AS_TEXT = {
    "fromcharcode-chunks-js": "".join(f"p(String.fromCharCode({','.join(map(str, c))}));\n"
                                      for c in _chunks(FILE, 1000)).encode(),
    "fromcharcode-small-chunks": "".join(f"p(String.fromCharCode({','.join(map(str, c))}));"
                                         for c in _chunks(FILE, 40)).encode(),
    "css-custom-properties": (":root{" + "".join(f"--a{i}:{b};" for i, b in enumerate(FILE)) + "}").encode(),
    "hex-entities": ("<div id=d>" + "".join(f"&#x{b:x};" for b in FILE) + "</div>").encode(),
    "decimal-entities-spaced": ("<p>" + " ".join(f"&#{b};" for b in FILE) + "</p>").encode(),
    "cyrillic-per-byte": ("<p>" + "".join(chr(0x400 + b) for b in FILE) + "</p>").encode(),
    "latin-extended-per-byte": ("<p>" + "".join(chr(0x100 + b) for b in FILE) + "</p>").encode(),
    "cyrillic-per-byte-as-words": ("<p>" + " ".join("".join(chr(0x400 + b) for b in c) for c in _chunks(FILE, 6))
                                   + "</p>").encode(),
    "cyrillic-as-entities": ("<p>" + "".join(f"&#x{0x400 + b:x};" for b in FILE) + "</p>").encode(),
}


@pytest.mark.parametrize("name", sorted(BYTES_AS_TEXT))
def test_bytes_as_numbers_references_or_letters_are_found(name):
    page = BYTES_AS_TEXT[name]
    assert any_alphabet(page, 4096) is not None, name
    assert encoded_chars(page) >= 2048, name  # and they count towards the per-user tally


JA = ("用紙サイズを選択してください。トナー残量が少なくなっています。給紙トレイ２に用紙がありません。"
      "両面印刷の設定を変更しました。ネットワーク設定は管理者のみが変更できます。ジョブ履歴を表示します。"
      "消耗品情報を確認してください。デバイス情報の更新に失敗しました。ファームウェアの更新が完了しました。")
RU = ("Выберите формат бумаги. Тонер заканчивается, замените картридж. В лотке 2 нет бумаги. "  # noqa: RUF001 - Russian on purpose
      "Параметры двусторонней печати изменены. Сетевые настройки может менять только администратор. "
      "Журнал заданий пуст. Проверьте сведения о расходных материалах. Не удалось обновить прошивку устройства.")  # noqa: RUF001
DE = ("Papierformat auswählen. Der Toner ist fast leer, bitte die Kartusche ersetzen. Fach 2 ist leer. "
      "Die Einstellungen für den beidseitigen Druck wurden geändert. Netzwerkeinstellungen darf nur der "
      "Administrator ändern. Das Auftragsprotokoll ist leer. Größe, Schärfe und Helligkeit prüfen.")


@pytest.mark.parametrize("lang", ["ja", "ru", "de"])
def test_string_tables_in_any_language_and_number_tables_pass(lang):
    text = {"ja": JA, "ru": RU, "de": DE}[lang]
    rnd = random.Random(lang)
    sentences = [s for s in text.replace("。", "。|").replace(". ", ".|").split("|") if s]
    table = "var L={" + ",".join(f'k{i}:"{rnd.choice(sentences)}{rnd.choice(sentences)}"' for i in range(300)) + "};"
    page = "<html><body>" + "".join(f"<p>{rnd.choice(sentences)} {rnd.choice(sentences)}</p>" for i in range(300))
    squeezed = "".join(rnd.choice(sentences).replace(" ", "") for _ in range(300))  # labels run together
    for body in (table.encode(), page.encode(), squeezed.encode()):
        assert any_alphabet(body, 4096) is None
        assert encoded_chars(body) == 0
    entities = "".join(f"&#{ord(c)};" for c in text * 10).encode()  # an old EWS escapes every character
    assert any_alphabet(entities, 4096) is None


def test_lookup_tables_and_numeric_data_pass():
    crc_like = ("var T=[" + ",".join(str(i) for i in range(256)) * 4 + "];").encode()  # sorted tables
    levels = json.dumps({"history": [{"day": d, "black": 100 - d // 4, "cyan": 90 - d // 5} for d in range(300)]}).encode()
    for body in (crc_like, levels):
        assert any_alphabet(body, 4096) is None


def test_references_that_spell_an_encoding_are_judged_as_that_encoding():
    b64 = base64.b64encode(FILE)
    parts = b"".join(b"<i>" + "".join(f"&#x{c:x};" for c in b64[i : i + 80]).encode() + b"</i>"
                     for i in range(0, len(b64), 80))
    assert any_alphabet(parts, 4096) is not None
    assert unescaped(b"&#x420;&#1091;&amp;&#x110000;") == "\u0420\u0443&\ufffd".encode()


# --- issue 21, third round: short groups, odd letters, escapes, the sampling grid ------------

def test_short_groups_count_towards_the_session_tally():
    """Base64 in 4-character groups (or with "!" every 3) sent in small requests adds up."""
    b64 = base64.b64encode(BIG[:150])
    spaced = b" ".join(b64[i : i + 4] for i in range(0, len(b64), 4))
    banged = b"!".join(b64[i : i + 3] for i in range(0, len(b64), 3))
    assert encoded_chars(b"note=" + spaced) >= 150
    assert encoded_chars(b"note=" + banged) >= 150
    prose = b"The printer in room 101 needs a new drum unit soon and the toner is low. " * 4
    assert encoded_chars(prose) == 0


def test_base85_between_prose_placed_on_the_sampling_grid_is_found():
    """Prose at offsets 0-255 of every 2 KiB and base85 elsewhere: a fixed grid sees only prose."""
    b85 = base64.b85encode(random.Random(2121).randbytes(40_000))
    prose = (b"Toner low. Replace the drum unit in tray two soon, then print a test page. " * 4)[:256]
    page = b"".join(prose + b85[i : i + 1792] for i in range(0, len(b85) - 1792, 1792))
    for _ in range(5):  # a random grid for each look: every look finds it
        assert any_alphabet(page, 4096) is not None


def test_no_sampling_grid_finds_random_text_in_minified_parser_tables():
    """Each look falls anywhere in its 2 KiB stride now: the chance that two of the looks at
    mitmproxy's vendor bundle land on windows that look random (Lezer parse tables: one
    row-marker character far above the mean), which refuses it, must stay negligible. The share
    of random-looking windows in each stride is estimated from every 32nd offset."""
    import pathlib

    import mitmproxy

    from gateway.proxy.encoded import _random_window

    static = pathlib.Path(mitmproxy.__file__).parent / "tools" / "web" / "static"
    for path in sorted(static.glob("vendor-*.js")):
        body = path.read_bytes()
        strides = Counter(p // 2048 for p in range(0, len(body) - 256, 32)
                          if body.count(b" ", p, p + 256) <= 8 and _random_window(body[p : p + 256]))
        shares = [n * 32 / 2048 for n in strides.values()]
        two_hits = sum(a * b for i, a in enumerate(shares) for b in shares[i + 1 :])
        assert two_hits < 0.001, (path.name, strides.most_common(5))
