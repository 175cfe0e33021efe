"""Witness trouble lands in the audit trail, where security alerting sees it: a real
``printgate audit witness`` process that refuses reports it to the gateway
(``audit.witness.failed``); a cosignature of a checkpoint the gateway never signed (split
view) is recorded before it is refused; a witness that stops cosigning is noticed by the
checkpoint timer after the threshold, once per silence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import text

from alerting.delivery import Channels
from alerting.follower import SecurityAlertFollower
from audit.checkpoint import Signer
from audit.checkpoint_timer import CheckpointTimer
from audit.cosignature import Cosigner
from audit.query import AuditFilter, search
from printgate.domain import AuditRecord
from printgate.vault.kms import FileKms
from tests.audit.conftest import sample_events
from tests.audit.test_witness import Gateway, WitnessBox, _token, gateway, run, witness, witness_id

__all__ = ["gateway", "witness"]  # the fixtures, shared with test_witness

FAILED = "audit.witness.failed"


async def failures(gw: Gateway) -> list[AuditRecord]:
    return await search(gw.db, AuditFilter(types=(FAILED,), limit=100))


async def test_a_refusing_witness_reports_it_and_the_operators_are_alerted(
        gateway: Gateway, witness: WitnessBox, tmp_path: Path) -> None:
    follower = SecurityAlertFollower(gateway.db, Channels(smtp=None), FileKms(tmp_path / "kms.key"))
    await follower.evaluate_once()  # the cursor starts at the head
    await gateway.grow(4)
    impostor = witness.dir / "impostor.pub"  # the witness pins another gateway key: every checkpoint is forged
    impostor.write_text(Signer.generate().public_key_pem())
    argv = [a if a != str(gateway.public_key) else str(impostor) for a in witness.args("--once")]
    code, out, err = await run(*argv)
    assert code == 1 and "REFUSED (forged)" in err, (out, err)
    [rec] = await failures(gateway)
    wid = witness_id(witness)
    assert rec.outcome == "failure" and rec.actor == f"witness:{wid}"
    assert (rec.details["reason"], rec.details["witness"], rec.details["tree_size"]) == ("forged", wid, 4)
    assert "not signed by the gateway key" in str(rec.details["message"])
    assert rec.personal.get("reported_by") == "sec@customer.example"
    [alert] = await follower.evaluate_once()
    assert (alert.rule, alert.severity, alert.platform) == ("platform.audit", 4, True)
    assert alert.subject == FAILED


async def test_a_cosignature_of_another_log_is_recorded_as_a_split_view(
        gateway: Gateway, witness: WitnessBox) -> None:
    size = await gateway.grow(5)
    other = gateway.signer.sign(tree_size=size, root=bytes(32), head="cd" * 32, at="2026-12-05T00:00:00.000000Z")
    cosig = Cosigner.load(witness.key).cosign(other, at="2026-12-05T00:00:01.000000Z")
    token = await _token(gateway.db, ["audit:witness"])
    async with httpx.AsyncClient(base_url=gateway.url, headers={"Authorization": f"Bearer {token}"}) as http:
        r = await http.post(f"/audit/checkpoints/{size}/cosignatures", json=cosig.to_json())
        assert r.status_code == 409, r.text
        bad = await http.post("/audit/witness/refusals", json={"witness": "x", "code": 7})
        assert bad.status_code == 422
    [rec] = await failures(gateway)
    assert (rec.details["reason"], rec.details["tree_size"]) == ("split_view", size)
    assert "did not sign" in str(rec.details["message"])


async def test_a_silent_witness_is_recorded_once_per_silence(gateway: Gateway, witness: WitnessBox) -> None:
    await gateway.grow(3)
    assert (await witness.once())[0] == 0  # it cosigned once
    later = [datetime.now(UTC)]
    timer = CheckpointTimer(gateway.log, 60, witness_silence_s=600, clock=lambda: later[0])
    await gateway.grow(2)  # a newer checkpoint waits for it
    await timer.tick()
    assert await failures(gateway) == []  # not silent for long enough yet
    later[0] += timedelta(minutes=11)
    await timer.tick()
    await timer.tick()
    [rec] = await failures(gateway)
    assert (rec.details["reason"], rec.details["witness"], rec.details["last_tree_size"]) == (
        "unreachable", witness_id(witness), 3)
    assert int(rec.details["silent_seconds"]) >= 600
    assert (await witness.once())[0] == 0  # it is back
    later[0] = datetime.now(UTC)
    await timer.tick()
    assert len(await failures(gateway)) == 1
    # silent again, later: a second record
    await gateway.grow(1)
    later[0] += timedelta(hours=1)
    await timer.tick()
    assert len(await failures(gateway)) == 2


async def test_a_checkpoint_that_cannot_be_signed_is_recorded_once_per_error(gateway: Gateway) -> None:
    await gateway.grow(6)
    await gateway.log.append_many(sample_events(4))
    async with gateway.db.transaction() as s:  # a record behind the newest checkpoint disappears
        await s.execute(text("DELETE FROM audit_personal WHERE seq = 8"))
        await s.execute(text("DELETE FROM audit_records WHERE seq = 8"))
    timer = CheckpointTimer(gateway.log, 60)
    await timer.tick()
    await timer.tick()
    recs = await search(gateway.db, AuditFilter(types=("audit.checkpoint.failed",), limit=10))
    assert len(recs) == 1 and recs[0].outcome == "failure"
    assert "gaps" in str(recs[0].details["error"]) and timer.signed == 0

