"""TransferBudget alone: a session's own data sent to the device is capped per request and per session."""

from dataclasses import replace

from gateway.proxy.addons.transfer_budget import TransferBudget
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

    async def reserve(self, key: str, size: int, budget: int, window_s: float) -> tuple[bool, int]:
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
