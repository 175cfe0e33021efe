"""Content sniffing (gateway/proxy/sniff.py): what a body really is, whatever its declared type.
Signatures at their offsets, short magics in text, polyglots, clean vs dirty images and fonts,
textual detection, CSV/HTML detection and job signatures at line starts."""

from __future__ import annotations

import struct
import zlib

import pytest

from gateway.proxy.sniff import (
    clean_font_kind,
    clean_image_kind,
    embedded_kind,
    font_kind,
    image_kind,
    is_textual,
    is_textual_throughout,
    job_or_document_kind,
    looks_like_csv,
    looks_like_html,
    transfer_kind,
)

ZIP_LOCAL = b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00" * 20


def png(extra_chunks: bytes = b"", trailer: bytes = b"") -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    idat = chunk(b"IDAT", zlib.compress(b"\x00\x00"))
    return b"\x89PNG\r\n\x1a\n" + ihdr + extra_chunks + idat + chunk(b"IEND", b"") + trailer


def gif() -> bytes:
    return b"GIF89a\x01\x00\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"


def jpeg() -> bytes:
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x11" * 40 + b"\xff\xd9"


def bmp(extra: bytes = b"", declared_extra: int = 0) -> bytes:
    body = b"\x00" * 40 + b"\xff\xff\xff\x00"
    size = 14 + len(body) + declared_extra
    return b"BM" + struct.pack("<IHHI", size, 0, 0, 54) + body + extra


def webp(extra: bytes = b"") -> bytes:
    payload = b"WEBPVP8 " + struct.pack("<I", 4) + b"\x00\x01\x02\x03"
    return b"RIFF" + struct.pack("<I", len(payload)) + payload + extra


def woff(trailer: bytes = b"", declared: int | None = None) -> bytes:
    body = b"wOFF" + b"\x00\x01\x00\x00" + b"\x00\x00\x00\x00" + b"\x00" * 32 + b"font tables" * 4
    length = declared if declared is not None else len(body) + len(trailer)
    return body[:8] + struct.pack(">I", length) + body[12:] + trailer


def ttf(trailer: bytes = b"") -> bytes:
    # one table record: tag, checksum, offset 28, length 16
    head = b"\x00\x01\x00\x00" + struct.pack(">HHHH", 1, 16, 0, 0)
    record = b"head" + b"\x00" * 4 + struct.pack(">II", 28, 16)
    return head + record + b"\x01" * 16 + trailer


# --- transfer_kind: the magic at the start ---------------------------------------------------

@pytest.mark.parametrize(("data", "kind"), [
    (ZIP_LOCAL, "zip"),
    (b"\x1f\x8b\x08\x00" + b"\x00" * 16, "gzip"),
    (b"\xfd7zXZ\x00\x00\x04", "xz"),
    (b"7z\xbc\xaf\x27\x1c\x00\x04", "7z"),
    (b"Rar!\x1a\x07\x01\x00", "rar"),
    (b"\x28\xb5\x2f\xfd\x04\x00", "zstd"),
    (b"%PDF-1.7\n", "pdf"),
    (b"%!PS-Adobe-3.0\n", "postscript"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 8, "ole_document"),
    (b"{\\rtf1\\ansi hello}", "rtf"),
    (b"\x7fELF\x02\x01\x01", "elf"),
    (b"MZ\x90\x00\x03\x00", "exe"),
    (b"\x1b%-12345X@PJL\n", "pjl"),
    (b"@PJL JOB\n", "pjl"),
    (b"\x1bE\x1b&l0O", "pcl"),
    (b"SQLite format 3\x00" + b"\x00" * 8, "sqlite"),
    (b"-----BEGIN PRIVATE KEY-----\n", "pem"),
    (b"\x30\x82\x01\x0a\x02", "der"),
    (b"\x00" * 257 + b"ustar\x0000" + b"\x00" * 250, "tar"),
])
def test_transfer_kinds_by_their_magic(data: bytes, kind: str) -> None:
    assert transfer_kind(data) == kind


@pytest.mark.parametrize("text", [b"MZ-1234 is the part number", b"BZh... said the note", b"0\x82 ohms (latin-1)"])
def test_short_magics_followed_by_text_are_not_files(text: bytes) -> None:
    assert transfer_kind(text) is None


def test_short_magic_with_binary_after_it_is_a_file() -> None:
    assert transfer_kind(b"MZ-1234 is the part number") is None
    assert transfer_kind(b"MZ\x00\x01 binary") == "exe"
    assert transfer_kind(b"BZh91AY&SY\x00\x01") == "bzip2"


def test_images_and_fonts_are_not_transfers_and_plain_text_is_nothing() -> None:
    assert transfer_kind(png()) is None
    assert transfer_kind(woff()) is None
    assert transfer_kind(b"hello world") is None and transfer_kind(b"") is None


# --- images and fonts -------------------------------------------------------------------------

def test_image_and_font_kinds_by_magic() -> None:
    assert image_kind(png()) == "png" and image_kind(gif()) == "gif" and image_kind(jpeg()) == "jpeg"
    assert image_kind(bmp()) == "bmp" and image_kind(webp()) == "webp"
    assert image_kind(b"RIFF\x00\x00\x00\x00WAVEfmt ") is None  # a RIFF that is not WebP
    assert font_kind(woff()) == "woff" and font_kind(b"wOF2....") == "woff2" and font_kind(ttf()) == "ttf"
    assert font_kind(b"OTTO\x00") == "otf" and font_kind(png()) is None


@pytest.mark.parametrize("make", [png, gif, jpeg, bmp, webp])
def test_well_formed_images_are_clean(make: object) -> None:
    data = make()  # type: ignore[operator]
    assert clean_image_kind(data) == image_kind(data) is not None


def test_a_png_with_a_zip_appended_or_an_unknown_chunk_is_not_clean() -> None:
    assert clean_image_kind(png(trailer=ZIP_LOCAL)) is None
    assert clean_image_kind(png(trailer=b"x")) is None
    bogus = struct.pack(">I", 4) + b"zzZZ" + b"abcd" + b"\x00" * 4
    assert clean_image_kind(png(extra_chunks=bogus)) is None


def test_a_png_with_a_zip_hidden_in_a_known_chunk_is_not_clean() -> None:
    text = b"Comment\x00" + ZIP_LOCAL
    chunk = struct.pack(">I", len(text)) + b"tEXt" + text + b"\x00" * 4
    data = png(extra_chunks=chunk)
    assert image_kind(data) == "png" and clean_image_kind(data) is None
    assert embedded_kind(data) == "zip"


def test_dirty_jpeg_gif_bmp_webp() -> None:
    assert clean_image_kind(jpeg() + b"PK\x03\x04 trailing") is None
    assert clean_image_kind(gif() + b"%PDF-1.4 more") is None
    assert clean_image_kind(bmp(extra=b"appended")) is None
    assert clean_image_kind(webp(extra=b"appended")) is None
    assert clean_image_kind(b"not an image") is None


def test_clean_and_dirty_fonts() -> None:
    assert clean_font_kind(woff()) == "woff"
    assert clean_font_kind(woff(trailer=b"appended", declared=len(woff()))) is None  # length disagrees
    assert clean_font_kind(woff(trailer=b"\x00" + ZIP_LOCAL)) is None  # length agrees, a zip inside
    assert clean_font_kind(ttf()) == "ttf"
    assert clean_font_kind(ttf(trailer=b"\x00\x00")) == "ttf"  # padding up to 4 bytes
    assert clean_font_kind(ttf(trailer=b"x" * 100)) is None
    assert clean_font_kind(b"\x00\x01\x00\x00" + b"\x00" * 8) is None  # no table directory
    assert clean_font_kind(png()) is None


# --- signatures anywhere (polyglots) -----------------------------------------------------------

@pytest.mark.parametrize(("tail", "kind"), [
    (ZIP_LOCAL, "zip"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"Rar!\x1a\x07\x00", "rar"),
    (b"\x7fELF\x02\x01", "elf"),
    (b"\x1f\x8b\x08\x00", "gzip"),
    (b"BZh91AY&SY", "bzip2"),
    (b"MSCF\x00\x00\x00\x00", "cab"),
    (b"SQLite format 3\x00", "sqlite"),
    (b"\x1b%-12345X", "pjl"),
    (b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n", "pdf"),
])
def test_embedded_signatures_at_any_offset(tail: bytes, kind: str) -> None:
    assert embedded_kind(b"GIF89a" + b"\x01" * 300 + tail + b"\x02" * 10) == kind


def test_pdf_words_in_text_are_not_a_document_but_pdf_structure_is() -> None:
    assert embedded_kind(b"Printer says %PDF-1.4 error on job 12") is None
    assert embedded_kind(b"log: %PDF-1.4\n3 0 obj << /Type /Page >> endobj") == "pdf"
    assert embedded_kind(b"\x00\x01 %PDF-1.4 in binary") == "pdf"
    assert embedded_kind(b"a zip word PK but no header") is None


def test_job_signatures_at_start_line_start_or_anywhere() -> None:
    assert job_or_document_kind(b"  %!PS-Adobe\nshowpage", anywhere=False) == "postscript"
    assert job_or_document_kind(b"%!\n", anywhere=False) == "postscript"
    assert job_or_document_kind(b"@PJL ENTER LANGUAGE", anywhere=False) == "pjl"
    assert job_or_document_kind(b"-----BEGIN CERTIFICATE-----", anywhere=False) == "pem"
    assert job_or_document_kind(b"{\\rtf1 x}", anywhere=False) == "rtf"
    body = b"name=x\n\x1bE\x1b&l0O"
    assert job_or_document_kind(body, anywhere=False) == "pcl"
    assert job_or_document_kind(body, anywhere=False, lines=False) is None
    mid = b"field=@PJL SET COPIES=99"
    assert job_or_document_kind(mid, anywhere=False) is None
    assert job_or_document_kind(mid, anywhere=True) == "pjl"
    # a PostScript signature mid-line counts only with PostScript in it
    assert job_or_document_kind(b"note: %!PS is a format", anywhere=True) is None
    assert job_or_document_kind(b"x=%!PS /Helvetica findfont 12 scalefont", anywhere=True) == "postscript"
    assert job_or_document_kind(b"ordinary form text", anywhere=True) is None


# --- text ------------------------------------------------------------------------------------

def test_is_textual() -> None:
    assert is_textual("Grüße, 日本語 text\r\n\t".encode())
    assert is_textual("caf\u00e9 latin-1".encode("latin-1"))  # legacy 8-bit text without controls
    assert is_textual("ok \u00e9".encode()[:-1])  # a multi-byte sequence cut at the end
    assert not is_textual(b"text\x00with NUL")
    assert not is_textual(b"\xff\xfe\x01\x02" + b"abc" * 10)  # controls in non-UTF-8: binary
    assert not is_textual(bytes(range(128, 256)) * 2)  # high-entropy 8-bit bytes


def test_is_textual_throughout_looks_at_the_whole_body() -> None:
    text = b"a" * 70_000
    assert is_textual_throughout(text)
    assert is_textual(text + b"\x00") and not is_textual_throughout(text + b"\x00")  # past the 64 KiB head
    assert not is_textual_throughout(b"short\x01value")
    assert is_textual_throughout(b"short\x01value", every_control=False)  # only NUL and ESC then
    assert not is_textual_throughout(b"esc \x1b[0m", every_control=False)
    big = b"x" * 5000
    assert is_textual_throughout(big) and not is_textual_throughout(big + b"\x07")


def test_csv_detection() -> None:
    assert looks_like_csv(b"a,b,c\n1,2,3\n4,5,6\n")
    assert looks_like_csv(b"a;b\n1;2\n3;4\n5;")  # the last line may be cut
    assert not looks_like_csv(b"a,b\n1,2\n")  # too few lines
    assert not looks_like_csv(b"a,b,c\n1,2\n3,4,5,6\n")  # separator counts differ
    assert not looks_like_csv(b"<td>a,b</td>\n<td>1,2</td>\n<td>3,4</td>\n")
    assert not looks_like_csv(b"just\nsome\nlines\n")


def test_html_detection() -> None:
    assert looks_like_html(b"<!DOCTYPE html><html>")
    assert looks_like_html(b"  \n<!-- cgi --> <HTML>\n<body>")
    assert looks_like_html(b"<div class=x>")
    assert not looks_like_html(b"<?xml version='1.0'?><svg/>")
    assert not looks_like_html(b"hello <html>")
    assert not looks_like_html(b"<htmlx>")
