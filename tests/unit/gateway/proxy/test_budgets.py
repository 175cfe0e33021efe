"""Issue 21 round 4 (budgets): the shared tally names its own reset time; seen values are a
bounded LRU; a new request shape pays for its field choice."""

import math
import time
from dataclasses import replace

from gateway.proxy.addons.transfer_budget import TransferBudget
from gateway.proxy.budgets import SEEN_CAP, Reservation, SessionLedger, TallyBook, choice_bits
from gateway.proxy.limits import ProxyLimits
from gateway.proxy.routes import RouteTable
from gateway.proxy.vendor_profiles import VendorEndpoints
from tests.unit.gateway.proxy.addons.flows import decision, flow, route


class _Pool:
    """The pool's tally (``TallyBook``) whose window started five hours ago."""

    def __init__(self) -> None:
        self.now = 10_000.0
        self.book = TallyBook(lambda: self.now)

    async def reserve(self, key: str, size: int, budget: int, window_s: float) -> Reservation:
        return self.book.reserve(key, size, budget, window_s)


async def test_with_workers_the_refusal_names_the_pools_reset_time_not_the_workers() -> None:
    pool = _Pool()
    limits = replace(ProxyLimits(), request_budget=4096, session_budget=300)
    r = route(session_id="w1", user_id="u", device_id="d")
    first = TransferBudget(limits, VendorEndpoints(()), RouteTable(), pool)
    f = flow("POST", "/s", headers={"content-type": "application/x-www-form-urlencoded"},
             content=b"a=" + b"floor two " * 10, with_route=r)
    await first.request(f)  # type: ignore[misc]
    assert f.response is None
    pool.now += 5 * 3600  # five hours later a freshly started worker takes the next request
    worker = TransferBudget(limits, VendorEndpoints(()), RouteTable(), pool)
    f = flow("POST", "/s", headers={"content-type": "application/x-www-form-urlencoded"},
             content=b"a=" + b"floor three " * 20, with_route=r)
    await worker.request(f)  # type: ignore[misc]
    refused = decision(f)
    assert refused is not None and refused.rule == "budget.session"
    expected = time.strftime("%Y-%m-%d %H:%M", time.gmtime(time.time() + 3 * 3600))
    later = time.strftime("%Y-%m-%d %H:%M", time.gmtime(time.time() + 3 * 3600 + 60))
    assert expected in refused.reason or later in refused.reason, refused.reason


def test_seen_values_forget_the_least_recently_used_not_all_at_once() -> None:
    ledger = SessionLedger()
    ledger.remember_device_cookie(b"ews_token=abc")
    for i in range(3 * SEEN_CAP):
        ledger.remember([f"x-v:{i}".encode(), b"ews_token=abc"])  # the cookie goes with every request
        assert len(ledger.seen) <= SEEN_CAP
    assert len(ledger.seen) == SEEN_CAP
    fresh = SessionLedger()
    fresh.remember([b"ews_token=abc"])
    assert next(iter(fresh.seen)) in ledger.seen


def test_a_new_shape_pays_for_which_seen_values_it_carries() -> None:
    budget = TransferBudget(replace(ProxyLimits(), session_budget=1 << 20), VendorEndpoints(()), RouteTable())
    names = [f"x-b{i}" for i in range(40)]
    budget.request(flow("GET", "/d", headers=dict.fromkeys(names, "1"), with_route=route(session_id="s")))
    ledger = budget.ledger("s")
    before = ledger.used
    carried = {n: "1" for n in names[::2]}  # 40 presence bits: 5 bytes of data
    budget.request(flow("GET", "/d", headers=carried, with_route=route(session_id="s")))
    cost = ledger.used - before
    assert cost == 1 + math.ceil(choice_bits(20, 40) / 8) >= 5
    before = ledger.used
    budget.request(flow("GET", "/d", headers=carried, with_route=route(session_id="s")))
    assert ledger.used - before == 1  # the same shape again: which of 256 remembered shapes


def test_touching_the_most_recent_value_keeps_the_order_and_an_older_one_moves_last() -> None:
    """``_lru_touch``'s fast path (the key already last) leaves the same order as pop-and-add."""
    from gateway.proxy.budgets import _lru_touch

    lru: dict[bytes, None] = dict.fromkeys([b"a", b"b", b"c"])
    _lru_touch(lru, b"c", 3)
    assert list(lru) == [b"a", b"b", b"c"]
    _lru_touch(lru, b"a", 3)
    assert list(lru) == [b"b", b"c", b"a"]
    _lru_touch(lru, b"d", 3)
    assert list(lru) == [b"c", b"a", b"d"]


def test_a_request_without_header_fields_or_cookies_has_its_address_as_its_shape() -> None:
    """The shortcut (no fields: the shape key is the address key) is the digest of the same text."""
    from gateway.proxy.budgets import _digest, request_user_data, url_shape

    data = request_user_data(flow("GET", "/status?x=1").request, SessionLedger(), now=0.0)
    shape = url_shape(b"GET /status?x=1", 0.0).shape
    assert data.shape_key == data.url_key == _digest(b"\n".join([shape]))
    with_field = request_user_data(flow("GET", "/status?x=1", headers={"accept": "*/*"}).request, SessionLedger(), now=0.0)
    assert with_field.shape_key != with_field.url_key == data.url_key


def test_the_http_version_is_part_of_the_address_sent() -> None:
    """``GET /v HTTP/1.0`` reaches the device as such: after ``HTTP/1.1`` it is not a repeat (a bit
    a request, uncounted before), and it is charged for the version it names."""
    from gateway.proxy.budgets import request_user_data

    ledger = SessionLedger()
    usual = request_user_data(flow("GET", "/v").request, ledger, now=0.0)
    ledger.urls[usual.url_key] = None
    ledger.remember_shape(usual.shape_key)
    old = flow("GET", "/v").request
    old.http_version = "HTTP/1.0"
    other = request_user_data(old, ledger, now=0.0)
    assert other.url_key != usual.url_key and not other.nothing_new
    assert request_user_data(flow("GET", "/v").request, ledger, now=0.0).nothing_new
    assert other.usage.total > 0
