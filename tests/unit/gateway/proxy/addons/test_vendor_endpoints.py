"""VendorEndpointGuard alone: a known vendor transfer endpoint is blocked, other paths pass."""

from gateway.proxy.addons.vendor_endpoints import MEMO_BELOW, VendorEndpointGuard
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


def test_remembered_answers_are_the_fresh_ones_and_long_targets_are_judged_fresh() -> None:
    """The memo per method and target: a repeat is answered as the first time (blocked or not),
    also for a target just under and at MEMO_BELOW characters (the latter not remembered)."""
    guard = VendorEndpointGuard(parse_vendor_endpoints(RULES))
    pad = "/x" * ((MEMO_BELOW - len("/fw/upload")) // 2)
    for path in ("/fw/upload", "/status", pad[: MEMO_BELOW - 1 - len("/fw/upload")] + "/fw/upload",
                 pad + "/fw/upload" + "?" + "q" * MEMO_BELOW):
        fresh = guard._hit("POST", path)
        answers = []
        for _ in range(2):
            f = flow("POST", path)
            guard.request(f)
            answers.append(decision(f))
        assert answers[0] == answers[1]
        assert (answers[0] is not None) == (fresh is not None) == ("/fw/upload" in path)
