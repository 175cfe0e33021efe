"""BlockUploads alone: a file in a request body is refused whatever its declared type; a form passes."""

import io
import zipfile

from gateway.proxy.addons.block_uploads import BlockUploads
from gateway.proxy.limits import ProxyLimits
from tests.unit.gateway.proxy.addons.flows import decision, flow


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("addressbook.csv", "name,mail\n")
    return buf.getvalue()


def test_a_zip_posted_as_a_form_is_refused() -> None:
    f = flow("POST", "/import", headers={"content-type": "application/x-www-form-urlencoded"}, content=_zip())
    BlockUploads(ProxyLimits()).request(f)
    found = decision(f)
    assert f.response is not None and found is not None and found.rule.startswith("upload.")


def test_a_small_settings_form_passes() -> None:
    f = flow("POST", "/settings", headers={"content-type": "application/x-www-form-urlencoded"},
             content=b"location=2nd+floor&contact=it%40acme.example")
    BlockUploads(ProxyLimits()).request(f)
    assert f.response is None


def test_a_body_declared_over_every_limit_is_refused_before_it_is_read() -> None:
    limits = ProxyLimits()
    f = flow("POST", "/settings", headers={"content-length": str(limits.max_request_body + 1)})
    BlockUploads(limits).requestheaders(f)
    found = decision(f)
    assert f.response is not None and found is not None and found.rule == "upload.too_large"


def test_put_is_refused() -> None:
    f = flow("PUT", "/file.txt", content=b"hello")
    BlockUploads(ProxyLimits()).request(f)
    found = decision(f)
    assert found is not None and found.rule == "upload.method"


def test_bodyless_requests_are_judged_as_under_the_analysis_budget() -> None:
    """A request without a body is checked without the analysis budget: the same verdicts."""
    from gateway.proxy import encoded

    guard = BlockUploads(ProxyLimits())
    cases = [("GET", {}), ("GET", {"content-encoding": "gzip"}), ("GET", {"content-type": "application/ipp"}),
             ("DELETE", {}), ("POST", {}), ("HEAD", {"content-encoding": "identity"}), ("PUT", {"content-length": "0"})]
    verdicts = []
    for method, headers in cases:
        req = flow(method, "/", headers=headers).request
        with encoded.analysis_budget():
            budgeted = guard._check(req)
        assert guard.check(req) == budgeted
        verdicts.append(budgeted[0] if budgeted else None)
    assert verdicts == [None, "upload.encoded_body", "upload.ipp", "upload.method", None, None, "upload.method"]
