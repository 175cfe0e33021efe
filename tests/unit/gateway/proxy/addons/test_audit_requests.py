"""AuditRequests alone: every answered request is audited (never its query); no record, no answer."""

from gateway.proxy.addons.audit_requests import AuditRequests
from gateway.proxy.decision import DECISION_KEY, FlowDecision
from printgate.domain import AuditEventIn, Outcome
from printgate.testing.audit import RecordingAuditSink
from tests.unit.gateway.proxy.addons.flows import flow, response, route


async def test_a_served_request_is_recorded_without_its_query() -> None:
    audit = RecordingAuditSink()
    f = flow(path="/status?token=secret", response=response(), with_route=route(session_id="s1"))
    await AuditRequests(audit).response(f)
    (event,) = audit.of("dwa.request", "s1")
    assert event.outcome == Outcome.SUCCESS and event.details["path"] == "/status"
    assert "secret" not in repr(event.details)
    assert f.response is not None and f.response.status_code == 200


async def test_a_blocked_transfer_is_recorded_with_its_rule() -> None:
    audit = RecordingAuditSink()
    f = flow("POST", "/upload", content=b"x" * 10, response=response(403), with_route=route(session_id="s2"))
    f.metadata[DECISION_KEY] = FlowDecision(True, "upload.file", "no files", "request", "application/zip", 10)
    await AuditRequests(audit).response(f)
    (event,) = audit.of("dwa.transfer_blocked", "s2")
    assert event.outcome == Outcome.BLOCKED and event.details["rule"] == "upload.file"


class BrokenSink:
    async def append(self, event: AuditEventIn) -> None:
        raise OSError("disk full")


async def test_what_cannot_be_audited_is_not_delivered() -> None:
    f = flow(path="/", response=response(content=b"device page"), with_route=route())
    await AuditRequests(BrokenSink()).response(f)
    assert f.response is not None and f.response.status_code == 503
    assert b"device page" not in f.response.content
