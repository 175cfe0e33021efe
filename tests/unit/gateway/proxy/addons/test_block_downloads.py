"""BlockDownloads alone: a file offered for download is blocked; an ordinary page passes typed."""

from gateway.proxy.addons.block_downloads import BlockDownloads
from gateway.proxy.limits import ProxyLimits
from tests.unit.gateway.proxy.addons.flows import decision, flow, response, route


def test_an_attachment_is_blocked() -> None:
    f = flow(path="/backup.cgi", with_route=route(),
             response=response(content=b"config", headers={"content-type": "application/octet-stream",
                                                           "content-disposition": "attachment; filename=b.bin"}))
    BlockDownloads(ProxyLimits()).response(f)
    found = decision(f)
    assert found is not None and found.rule == "download.attachment"
    assert f.response is not None and b"config" not in f.response.content


def test_a_page_passes_and_an_untyped_one_gets_its_checked_type() -> None:
    page = flow(path="/", with_route=route(), response=response(content=b"<html><body>ok</body></html>"))
    untyped = flow(path="/", with_route=route(), response=response(content=b"<html><body>ok</body></html>",
                                                                   headers={}))
    for f in (page, untyped):
        BlockDownloads(ProxyLimits()).response(f)
        assert decision(f) is None
    assert untyped.response is not None and untyped.response.headers["content-type"] == "text/html"


def _big_page(extra: bytes = b"") -> bytes:
    row = b"<tr><td>counter</td><td>" + b"1234567890" * 7 + b"</td></tr>\n"
    return b"<html><body><table>" + row * 400 + b"</table>" + extra + b"</body></html>\n"


def test_a_repeated_page_is_judged_once_and_a_refused_one_stays_refused(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The body checks run once per distinct body (an EWS serves the same page again and again);
    the repeat gets the same decision, a refusal included, and any other body is checked afresh."""
    import base64
    import os

    from gateway.proxy import encoded

    scans: list[int] = []
    real = encoded.find_encoded

    def counted(data: bytes, *args, **kwargs):  # type: ignore[no-untyped-def]
        scans.append(len(data))
        return real(data, *args, **kwargs)

    monkeypatch.setattr(encoded, "find_encoded", counted)
    addon = BlockDownloads(ProxyLimits())
    clean = _big_page()
    smuggled = _big_page(b"<p>" + base64.b64encode(os.urandom(6000)) + b"</p>")
    outcomes = []
    for body in (clean, clean, smuggled, smuggled, clean + b" "):
        f = flow(path="/", with_route=route(), response=response(content=body))
        addon.response(f)
        found = decision(f)
        outcomes.append(found.rule if found is not None else None)
    assert outcomes == [None, None, "download.encoded_blob", "download.encoded_blob", None]
    assert len(scans) == 3  # clean, smuggled, and the changed page; never a repeat
    stricter = ProxyLimits(encoded_min_download=64)
    refused = addon.check(flow(path="/").request, response(content=clean), limits=stricter)
    assert refused is not None and refused[0] == "download.encoded_blob"  # other limits: judged again
    assert len(scans) == 4
