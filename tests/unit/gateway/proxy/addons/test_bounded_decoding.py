"""BoundedDecoding alone: compressed answers are decoded in place, bombs and unknown codings refused."""

import gzip
from dataclasses import replace

from gateway.proxy.addons.bounded_decoding import BoundedDecoding
from gateway.proxy.limits import ProxyLimits
from tests.unit.gateway.proxy.addons.flows import decision, flow, response

PAGE = b"<!doctype html><p>toner ok</p>" * 50


def _answer(body: bytes, encoding: str) -> object:
    return response(content=body, headers={"content-type": "text/html", "content-encoding": encoding,
                                           "content-length": str(len(body))})


def test_a_gzip_page_is_left_decoded_with_its_own_length() -> None:
    f = flow(response=_answer(gzip.compress(PAGE), "gzip"))  # type: ignore[arg-type]
    BoundedDecoding(ProxyLimits()).response(f)
    assert f.response is not None and decision(f) is None
    assert f.response.raw_content == PAGE and "content-encoding" not in f.response.headers
    assert f.response.headers["content-length"] == str(len(PAGE))


def test_a_gzip_bomb_is_refused_at_the_limit_with_both_sizes() -> None:
    bomb = gzip.compress(b"\0" * (4 * 1024 * 1024))
    limits = replace(ProxyLimits(), max_page_body=64 * 1024, max_image_body=1024, max_data_body=1024,
                     max_font_body=1024, max_svg_body=1024, max_plain_text=1024)
    f = flow(response=_answer(bomb, "gzip"))  # type: ignore[arg-type]
    BoundedDecoding(limits).response(f)
    found = decision(f)
    assert found is not None and found.rule == "download.too_large"
    assert f.response is not None and b"\0" * 1024 not in (f.response.raw_content or b"")


def test_an_unknown_coding_is_refused() -> None:
    f = flow(response=_answer(b"whatever", "x-secret-packing"))  # type: ignore[arg-type]
    BoundedDecoding(ProxyLimits()).response(f)
    found = decision(f)
    assert found is not None and found.rule == "download.content_encoding"


def test_the_encoding_field_is_found_in_any_case_and_its_absence_leaves_the_body() -> None:
    """The fast path (no Content-Encoding field: nothing to decode) at its edges: the field in
    upper case is still decoded, an empty or identity value and no field leave the body as it is."""
    packed = gzip.compress(PAGE)
    upper = response(content=packed, headers={"content-type": "text/html"})
    upper.headers.fields = (*upper.headers.fields, (b"CONTENT-ENCODING", b"gzip"))
    f = flow(response=upper)
    BoundedDecoding(ProxyLimits()).response(f)
    assert f.response is not None and f.response.raw_content == PAGE and decision(f) is None
    for headers in ({"content-type": "text/html"}, {"content-type": "text/html", "content-encoding": ""},
                    {"content-type": "text/html", "content-encoding": " Identity "}):
        f = flow(response=response(content=packed, headers=headers))
        BoundedDecoding(ProxyLimits()).response(f)
        assert f.response is not None and f.response.raw_content == packed and decision(f) is None
