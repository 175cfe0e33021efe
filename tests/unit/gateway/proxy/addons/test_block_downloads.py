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
