"""Personal values: a deleted value row is damage, an erasure is not; erasure
covers the person's account and leaves no copy of the erased value on disk."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import text

from audit.checkpoint import Signer
from audit.export import export_jsonl, verify_store
from audit.log import AuditLog
from audit.pseudonymise import erase
from audit.stream import read_export
from audit.verify import Damage, verify_items
from printgate.domain import AuditEventIn, Role, User, UserId
from printgate.store import tenants
from printgate.store.db import Database
from printgate.store.models.core import UserRow
from printgate.store.models.identity import RecoveryCodeRow
from tests.audit.conftest import sample_events

EMAIL = "erin.erasable@dealer.example"
NAME = "Erin Q. Erasable"


async def test_a_deleted_personal_value_row_is_named_as_damage(db: Database, signer: Signer, tmp_path: Path) -> None:
    log = AuditLog(db, signer, checkpoint_every=5)
    await log.append_many(sample_events(12))
    await log.checkpoint()
    assert (await verify_store(db, signer.verifier())).ok
    async with db.transaction() as s:  # who acted in record 7 silently disappears
        await s.execute(text("DELETE FROM audit_personal WHERE seq = 7"))
    report = await verify_store(db, signer.verifier())
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == (Damage.DELETED, 7), report.problem
    assert "no audit.personal.erased record" in report.problem.message
    await export_jsonl(db, tmp_path / "e.jsonl", with_personal=True)  # export mode sees it too
    exported = verify_items(read_export(tmp_path / "e.jsonl"), signer.verifier())
    assert exported.problem is not None and (exported.problem.kind, exported.problem.seq) == (Damage.DELETED, 7)
    await export_jsonl(db, tmp_path / "plain.jsonl")  # an export without personal values promises none
    assert verify_items(read_export(tmp_path / "plain.jsonl"), signer.verifier()).ok


async def test_the_last_records_missing_value_row_is_named_too(db: Database, signer: Signer) -> None:
    log = AuditLog(db, signer, checkpoint_every=100)
    await log.append_many(sample_events(4))
    async with db.transaction() as s:
        await s.execute(text("DELETE FROM audit_personal WHERE seq = 4"))
    report = await verify_store(db, signer.verifier())
    assert report.problem is not None and (report.problem.kind, report.problem.seq) == (Damage.DELETED, 4)


async def test_one_personal_field_removed_from_a_row_is_damage(db: Database, signer: Signer) -> None:
    log = AuditLog(db, signer, checkpoint_every=100)
    await log.append_many(sample_events(6))
    async with db.transaction() as s:
        row = (await s.execute(text("SELECT fields FROM audit_personal WHERE seq = 3"))).scalar_one()
        fields = row if isinstance(row, dict) else json.loads(row)
        del fields["source_ip"]
        await s.execute(text("UPDATE audit_personal SET fields = :f, source_ip = NULL WHERE seq = 3"),
                        {"f": json.dumps(fields)})
    report = await verify_store(db, signer.verifier())
    assert report.problem is not None and (report.problem.kind, report.problem.seq) == (Damage.DELETED, 3)
    assert "source_ip" in report.problem.message


async def _user_with_secrets(db: Database) -> None:
    async with db.transaction() as s:
        await tenants.add_user(s, User(UserId("user-erin"), EMAIL, NAME, frozenset({Role.TECHNICIAN})),
                               password_hash="$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
                               totp_secret="JBSWY3DPEHPK3PXP")
        await s.flush()
        s.add(RecoveryCodeRow(user_id="user-erin", code_hash="ab" * 32))


async def test_erasure_is_audited_verifies_and_pseudonymises_the_account(db: Database, signer: Signer) -> None:
    await _user_with_secrets(db)
    log = AuditLog(db, signer, checkpoint_every=4)
    await log.append_many(sample_events(6))
    await log.append_many([AuditEventIn(type="auth.login", actor=EMAIL, source_ip="127.0.0.9",
                                        details={"method": "password"}) for _ in range(3)])
    await log.append_many(sample_events(3))
    await log.append(AuditEventIn(type="rbac.user_disabled", actor="admin@dealer.example",
                                  personal={"subject": EMAIL}, details={"user": "user-erin"}))
    done = await erase(log, value=EMAIL, requested_by="dpo@dealer.example")
    assert (done.records, done.seq_ranges, done.user_id) == (4, [(7, 9), (13, 13)], "user-erin")
    report = await verify_store(db, signer.verifier())
    assert report.ok, report.problem
    async with db.session() as s:
        row = await s.get(UserRow, "user-erin")
        assert row is not None
        assert EMAIL not in row.email and row.display_name != NAME
        assert row.disabled and row.totp_secret is None and row.password_hash is None
        codes = (await s.execute(text("SELECT count(*) FROM mfa_recovery_codes"))).scalar_one()
        assert codes == 0
        entry = (await s.execute(text("SELECT entry FROM audit_records WHERE seq = :n"),
                                 {"n": done.record_seq})).scalar_one()
    assert '"type":"audit.personal.erased"' in entry and '"seq_ranges":[[7,9],[13,13]]' in entry
    assert EMAIL not in entry and NAME not in entry
    # an erasure record does not cover other records: deleting one of those is still damage
    async with db.transaction() as s:
        await s.execute(text("DELETE FROM audit_personal WHERE seq = 10"))
    report = await verify_store(db, signer.verifier())
    assert report.problem is not None and (report.problem.kind, report.problem.seq) == (Damage.DELETED, 10)


def _copies(path: Path, needle: bytes) -> int:
    if not path.exists():
        return 0
    data = path.read_bytes()
    return sum(data.count(form) for form in (needle, needle.decode().encode("utf-16-le")))


async def test_no_copy_of_an_erased_value_remains_in_the_sqlite_files(tmp_path: Path, signer: Signer) -> None:
    from printgate.store.db import migrate

    db_file = tmp_path / "erase.db"
    url = f"sqlite+aiosqlite:///{db_file}"
    await migrate(url)
    async with Database(url) as db:
        async with db.session() as s:
            assert (await s.execute(text("PRAGMA secure_delete"))).scalar_one() == 1
        await _user_with_secrets(db)
        log = AuditLog(db, signer, checkpoint_every=50)
        for i in range(40):  # enough rows for page splits and index pages
            await log.append_many([
                AuditEventIn(type="auth.login", actor=EMAIL, source_ip="127.0.0.9", details={"i": i}),
                *sample_events(5),
                AuditEventIn(type="rbac.roles_changed", actor="admin@dealer.example",
                             personal={"subject": EMAIL}, details={"user": "user-erin", "i": i}),
            ])
        files = [db_file, db_file.with_name(db_file.name + "-wal")]
        assert sum(_copies(f, EMAIL.encode()) for f in files) >= 40
        done = await erase(log, value=EMAIL, requested_by="dpo@dealer.example")
        assert done.records == 80 and done.purged, done.purge_detail
        for needle in (EMAIL.encode(), NAME.encode(), b"JBSWY3DPEHPK3PXP"):
            assert [_copies(f, needle) for f in files] == [0, 0], needle
        assert (await verify_store(db, signer.verifier())).ok
