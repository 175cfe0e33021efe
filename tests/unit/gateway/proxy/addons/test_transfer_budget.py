"""TransferBudget alone: a session's own data sent to the device is capped per request and per session."""

from dataclasses import replace

from mitmproxy.http import HTTPFlow

from gateway.proxy.addons import transfer_budget
from gateway.proxy.addons.transfer_budget import URL_MEMO_BELOW, TransferBudget
from gateway.proxy.budgets import Reservation
from gateway.proxy.limits import ProxyLimits
from gateway.proxy.routes import RouteTable
from gateway.proxy.vendor_profiles import VendorEndpoints
from tests.unit.gateway.proxy.addons.flows import decision, flow, route


def _budget(routes: RouteTable, **limits: int) -> TransferBudget:
    return TransferBudget(replace(ProxyLimits(), **limits), VendorEndpoints(()), routes)


def _form(session: str, text: str):  # type: ignore[no-untyped-def]
    return flow("POST", "/settings", headers={"content-type": "application/x-www-form-urlencoded"},
                content=text.encode(), with_route=route(session_id=session))


def test_requests_within_the_session_budget_pass_and_are_charged() -> None:
    routes = RouteTable()
    budget = _budget(routes, request_budget=4096, session_budget=100_000)
    f = _form("b1", "location=floor+2")
    budget.request(f)
    assert f.response is None and budget.ledger("b1").used > 0


def test_the_session_budget_stops_a_trickle_of_small_requests() -> None:
    routes = RouteTable()
    budget = _budget(routes, request_budget=4096, session_budget=200)
    refused = None
    for i in range(20):
        f = _form("b2", f"note{i}=" + "abcdefghij" * 3 + str(i))
        budget.request(f)
        if f.response is not None:
            refused = decision(f)
            break
    assert refused is not None and refused.rule == "budget.session"
    assert budget.ledger("b2").used <= 200


def test_a_removed_session_forgets_its_ledger() -> None:
    routes = RouteTable()
    budget = _budget(routes)
    r = route(session_id="b3")
    routes.add(r)
    budget.charge(r, 50)
    routes.remove("b3", "ended")
    assert budget.ledger("b3").used == 0


class _Authority:
    """The pool's side of the shared tally, in process (what ``ProxyWorkerPool`` answers)."""

    def __init__(self) -> None:
        from gateway.proxy.budgets import TallyBook

        self.book = TallyBook()

    async def reserve(self, key: str, size: int, budget: int, window_s: float) -> Reservation:
        return self.book.reserve(key, size, budget, window_s)


async def test_two_workers_sharing_a_tally_give_a_session_one_budget_not_two() -> None:
    authority = _Authority()
    limits = replace(ProxyLimits(), request_budget=4096, session_budget=1000)
    workers = [TransferBudget(limits, VendorEndpoints(()), RouteTable(), authority) for _ in range(2)]
    text = "location=" + "floor two, north wing " * 12  # ~270 bytes of plain text per request
    outcomes = []
    for i in range(8):  # alternating workers, as the kernel spreads connections
        f = _form("shared", text)
        pending = workers[i % 2].request(f)
        if pending is not None:
            await pending
        found = decision(f)
        outcomes.append(found.rule if found is not None else "sent")
    per_request = len(_form("shared", text).request.path) + len(text)
    allowed = 1000 // per_request
    assert outcomes == ["sent"] * allowed + ["budget.session"] * (8 - allowed), outcomes
    assert 0 < allowed < 4  # per-worker tallies would have let 2 * allowed through


def test_bytes_as_entities_or_letters_in_form_fields_count_per_user_and_device() -> None:
    """Issue 21 F2/F3 (second round): 12 KiB sent as ``&#xNN;`` references or one Cyrillic letter
    per byte, 300 bytes a form, reaches the encoded tally; the refusal says the tally is per user
    and device (across sessions), not per session."""
    import random
    from urllib.parse import quote_plus

    raw = random.Random(7).randbytes(12 * 1024)
    forms = {
        "entities": lambda ch: "".join(f"&#x{b:x};" for b in ch),
        "cyrillic": lambda ch: "".join(chr(0x400 + b) for b in ch),
    }
    for name, encode in forms.items():
        routes = RouteTable()
        budget = _budget(routes, request_budget=64 * 1024, session_budget=1 << 30)
        refused = None
        for i in range(0, len(raw), 300):
            f = _form(f"t-{name}", "memo=" + quote_plus(encode(raw[i : i + 300])))
            budget.request(f)
            if f.response is not None:
                refused = decision(f)
                break
        assert refused is not None and refused.rule == "upload.session_encoded", name
        assert i < 4096, (name, i)  # long before the file is through
        assert "per user and device" in refused.reason and "this session" not in refused.reason


def _get(session: str, path: str, headers: dict[str, str] | None = None) -> HTTPFlow:
    return flow("GET", path, headers=headers, with_route=route(session_id=session))


def test_an_address_sent_before_costs_one_byte_and_a_timestamp_a_few() -> None:
    """Issue 21 F4: polling a status URL (plain, or with jQuery's ``?_=<ms>``) costs 1 byte a
    request after the first (3 more for the timestamp), not its whole path each time."""
    import time

    budget = _budget(RouteTable())
    cost = []
    for i in range(5):
        before = budget.ledger("p1").used
        budget.request(_get("p1", f"/hp/device/status.json?_={int(time.time() * 1000) + i}"))
        budget.request(_get("p1", "/hp/device/info.html"))
        cost.append(budget.ledger("p1").used - before)
    # each first request is a new shape: + 1 byte for its (empty) sequence of header fields and cookies
    assert cost[0] == len("/hp/device/status.json?_=#ms") + 3 + len("/hp/device/info.html") + 2
    assert cost[1:] == [1 + 3 + 1] * 4


def test_numbers_and_new_text_in_the_address_cost_their_information() -> None:
    from gateway.proxy.budgets import number_cost, url_shape

    now = 1_800_000_000.0
    assert number_cost(b"1800000123", now) == 2  # seconds within an hour: 13 bits
    assert number_cost(b"1800000123456", now) == 3  # milliseconds within an hour: 23 bits
    assert number_cost(b"1700000000000", now) == 6  # not near the clock: 13 digits' worth
    assert number_cost(b"7" * 40, now) == 17
    assert number_cost(b"0.5371902245170", now) == 7  # Math.random(): its digits and where its point is
    shape = url_shape(b"GET /a?x=1&y=toner&_=1800000123456", now)
    assert (shape.shape, shape.numbers_cost, shape.other_numbers) == (b"GET /a?x=#&y=toner&_=#ms", 4, 1)
    assert url_shape(b"GET /a?_=1800000123", now).shape == b"GET /a?_=#s"  # the unit is the shape's (zc F2)
    budget = _budget(RouteTable())
    for i in range(3):  # the same text in distinct segments: every one is new
        before = budget.ledger("p2").used
        budget.request(_get("p2", f"/notes/{i}-the-front-desk-printer"))
        assert budget.ledger("p2").used - before == len(f"/notes/{i}-the-front-desk-printer") + 1  # + its shape


def test_past_the_budget_only_requests_with_nothing_new_go_on_in_their_turn() -> None:
    import time

    budget = _budget(RouteTable(), request_budget=4096, session_budget=200)
    for path in ("/", f"/status.json?_={int(time.time() * 1000)}", "/info.html"):
        budget.request(_get("p3", path))
    while True:
        f = _form("p3", "note=" + "floor two " * 5)
        budget.request(f)
        if f.response is not None:
            break
    refused = decision(f)
    assert refused is not None and refused.rule == "budget.session" and "starts afresh at about" in refused.reason
    for i in range(100):  # the last few bytes: new 3-byte addresses until one is refused
        f = _get("p3", f"/{i:02d}")
        budget.request(f)
        if f.response is not None:
            break
    assert budget.ledger("p3").used > 200 - 3
    # seen addresses (a timestamp too) still pass: the browser's timestamp is replaced by the proxy's
    stale = int(time.time() * 1000) - 600_000
    f = _get("p3", f"/status.json?_={stale}")
    budget.request(f)
    assert f.response is None and str(stale) not in f.request.path
    assert abs(int(f.request.path.rsplit("=", 1)[1]) / 1000 - time.time()) < 5
    for path in ("/info.html", "/"):
        f = _get("p3", path)
        budget.request(f)
        assert f.response is None
    for f in (_get("p3", "/new.html"), _get("p3", "/info.html?x=a"), _get("p3", "/info.html", headers={"x-n": "1"}),
              _get("p3", f"/status.json?_={int(time.time())}")):  # seconds where milliseconds were seen (zc F2)
        budget.request(f)
        found = decision(f)
        assert found is not None and found.rule == "budget.session", f.request.path


def test_the_repeat_throttle_gives_a_burst_then_one_a_second() -> None:
    from gateway.proxy.budgets import REPEAT_BURST, REPEAT_MAX_WAIT_S, RepeatThrottle

    now = [100.0]
    throttle = RepeatThrottle(lambda: now[0])
    assert [throttle.reserve() for _ in range(REPEAT_BURST)] == [0.0] * REPEAT_BURST
    waits = []
    while (w := throttle.reserve()) is not None:
        waits.append(w)
    assert waits == [float(i) for i in range(1, int(REPEAT_MAX_WAIT_S) + 1)]
    now[0] += 10  # ten seconds later: ten turns more (the five already promised first)
    assert throttle.reserve() == 0.0


def test_a_cookie_the_device_set_is_free_on_the_users_tally_on_the_device() -> None:
    """The device's Set-Cookie is remembered on the tally requests are checked against (the
    user's on the device when the route names both), so its long token sent back is neither
    counted nor checked as an encoded cookie."""
    from mitmproxy.test import tutils

    from tests.proxy.hostile_device import DEVICE_TOKEN

    budget = _budget(RouteTable())
    r = route(session_id="c1", user_id="u1", device_id="d1")
    signin = flow("GET", "/signin", with_route=r,
                  response=tutils.tresp(headers=[(b"set-cookie", f"ews_token={DEVICE_TOKEN}; Path=/".encode())]))
    budget.response(signin)
    f = flow("GET", "/status.html", headers={"cookie": f"ews_token={DEVICE_TOKEN}"}, with_route=r)
    budget.request(f)
    assert f.response is None, decision(f)
    # the address and which cookies it carries (one field: 1 byte), not the token
    assert budget.ledger_of(r).used == len("/status.html") + 1


def _target(length: int, segment: str) -> str:
    """A request target of exactly ``length`` bytes ending in ``segment`` (short word segments before)."""
    return ("/toner" * length)[: length - 1 - len(segment)] + "/" + segment


def test_remembered_url_verdicts_are_the_fresh_ones_at_the_memo_boundary() -> None:
    """Addresses under URL_MEMO_BELOW bytes have their verdict remembered: asked twice (from the
    memo the second time) it is the fresh verdict, just under and at the boundary alike."""
    encoded_segment = __import__("base64").b64encode(bytes(range(256)) * 4).decode()  # 1368 characters
    cases = [_target(n, "status.html") for n in (URL_MEMO_BELOW - 1, URL_MEMO_BELOW)]
    cases += ["/" + encoded_segment[: URL_MEMO_BELOW - 2], "/" + encoded_segment[: URL_MEMO_BELOW - 1],
              "/x?" + "q=%00" * 10, "/small.html"]
    for target in cases:
        fresh = transfer_budget._url_verdict(target, 1000)
        req = flow("GET", target).request
        assert TransferBudget._check_url(req, 1000) == fresh
        assert TransferBudget._check_url(req, 1000) == fresh
    assert transfer_budget._url_verdict(cases[2], 1000) is not None  # the encoded one is refused
    assert transfer_budget._url_verdict(cases[4], 1000) is not None  # and so is the binary one
    assert transfer_budget._url_verdict(cases[0], 1000) is None


def test_a_request_is_costed_the_same_with_headers_cookies_and_droppable_fields_in_any_mix() -> None:
    """request_user_data's one pass over the fields: the header keys, then the cookie keys, in
    order; the shape without droppable fields is the shape itself when there are none."""
    from gateway.proxy.budgets import (
        DROPPABLE_HEADERS,
        SessionLedger,
        _digest,
        cookie_pairs,
        custom_headers,
        request_user_data,
    )

    f = flow("GET", "/a?b=1", headers={"accept": "text/html", "cookie": "x=1; y=2", "if-none-match": "W/1",
                                       "x-a": "b"})
    req = f.request
    req.headers.add("cookie", "z=3")
    ledger = SessionLedger()
    data = request_user_data(req, ledger, now=0.0)
    expected = ([n + b":" + v for n, v in custom_headers(req)] + [n + b"=" + v for n, v in cookie_pairs(req)])
    assert data.keys == expected
    assert data.key_digests == tuple(_digest(k) for k in expected)  # what remember(keys) would take
    assert data.loose_key != data.shape_key  # if-none-match is droppable
    plain = request_user_data(req, ledger, now=0.0, drop=DROPPABLE_HEADERS)
    assert plain.loose_key == plain.shape_key
    assert [k for k in plain.keys if k.startswith(b"if-none-match")] == []
