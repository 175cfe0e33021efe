"""Bounded Content-Encoding decoding (gateway/proxy/bounded_decode.py): real zlib and brotli streams."""

from __future__ import annotations

import gzip
import zlib

import brotli
import pytest

from gateway.proxy.bounded_decode import decode_bounded

PAGE = b"<!doctype html><p>status ok</p>" * 100


@pytest.mark.parametrize(("encoding", "encode"), [
    ("gzip", gzip.compress),
    ("x-gzip", gzip.compress),
    ("deflate", zlib.compress),
    ("deflate", None),
    ("br", brotli.compress),
])
def test_ordinary_compressed_pages_decode_whole(encoding, encode):
    raw = encode(PAGE) if encode is not None else b""
    if encode is None:  # "deflate" sent without the zlib header
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        raw = c.compress(PAGE) + c.flush()
    result = decode_bounded(raw, encoding, 64 * 1024)
    assert result.body == PAGE and result.problem == "" and result.encoded_size == len(raw)


def test_several_gzip_members_are_one_body():
    raw = gzip.compress(PAGE) + gzip.compress(PAGE)
    assert decode_bounded(raw, "gzip", 64 * 1024).body == PAGE + PAGE


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
def test_a_body_over_the_limit_stops_one_byte_past_it(encoding):
    big = b"A" * (8 * 1024 * 1024)
    raw = gzip.compress(big) if encoding == "gzip" else zlib.compress(big) if encoding == "deflate" else brotli.compress(big)
    result = decode_bounded(raw, encoding, 1000)
    assert result.body is None and result.problem == "too_large" and result.decoded_size == 1001


@pytest.mark.parametrize(("raw", "encoding", "problem"), [
    (gzip.compress(PAGE, mtime=0)[:-20], "gzip", "corrupt"),
    (b"not compressed at all", "br", "corrupt"),
    (b"anything", "zstd", "unsupported"),
    (b"anything", "gzip, br", "unsupported"),
    (b"anything", "compress", "unsupported"),
])
def test_corrupt_truncated_and_unknown_encodings_are_refused(raw, encoding, problem):
    result = decode_bounded(raw, encoding, 64 * 1024)
    assert result.body is None and result.problem == problem
