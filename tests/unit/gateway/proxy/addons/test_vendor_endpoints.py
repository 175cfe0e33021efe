"""VendorEndpointGuard alone: a known vendor transfer endpoint is blocked, other paths pass."""

from gateway.proxy.addons.vendor_endpoints import VendorEndpointGuard
from gateway.proxy.vendor_profiles import parse_vendor_endpoints
from tests.unit.gateway.proxy.addons.flows import decision, flow

RULES = """
[[endpoint]]
vendor = "TestVendor"
kind = "firmware_upload"
methods = ["POST"]
path = "/fw/upload"
"""


def test_a_listed_endpoint_is_blocked_with_its_kind() -> None:
    guard = VendorEndpointGuard(parse_vendor_endpoints(RULES))
    f = flow("POST", "/fw/upload?x=1", content=b"firmware")
    guard.request(f)
    found = decision(f)
    assert f.response is not None and found is not None and found.rule == "vendor.firmware_upload"


def test_other_methods_and_paths_pass() -> None:
    guard = VendorEndpointGuard(parse_vendor_endpoints(RULES))
    for f in (flow("GET", "/fw/upload"), flow("POST", "/status")):
        guard.request(f)
        assert f.response is None


def test_path_tricks_that_a_device_resolves_to_the_listed_endpoint_are_blocked() -> None:
    guard = VendorEndpointGuard(parse_vendor_endpoints(RULES.replace('"/fw/upload"', '"^/fw/upload$"')))
    for path in ("//fw/upload", "/fw//upload", "/%66w/upload", "/%2566w/upload", "/x/../fw/upload",
                 "/./fw/upload", "\\fw\\upload", "/fw/upload/."):
        f = flow("POST", path, content=b"firmware")
        guard.request(f)
        found = decision(f)
        assert f.response is not None and found is not None, path
