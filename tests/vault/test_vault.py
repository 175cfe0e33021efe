"""The credential vault on a real database (SQLite and PostgreSQL) with the real audit log:
envelope encryption, versions, resolution, erasure, and no secret in clear anywhere."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import select, text, update

from printgate.domain.credentials import CredentialScope, LoginKind
from printgate.errors import CredentialInvalid, VaultError
from printgate.store.models.vault import DeviceCredentialRow, VaultDataKeyRow
from printgate.testing.audit import ReadableAuditLog
from printgate.testing.tenancy import Tenancy
from printgate.vault import CredentialVault, FileKms

SECRET = "Sup3r-S3cret-Adm1n-Pw!"


@pytest.fixture
async def vault(db, tmp_path):
    await (Tenancy().chain(dealer="d1", customer="c1", site="s1", agent="a1")
           .customer("c2", "d1").save(db))
    return CredentialVault(db, FileKms(tmp_path / "keys" / "vault-master.key"), ReadableAuditLog(db, None))


async def _set(vault: CredentialVault, password: str = SECRET, *, scope=CredentialScope.DEVICE, target="dev1",
               customer="c1", kind=LoginKind.FORM):
    return await vault.set(customer_id=customer, dealer_id="d1", scope=scope, target=target, kind=kind,
                           account="admin", password=password, actor="u-admin")


async def test_master_key_file_is_created_0600_on_first_use(vault, tmp_path):
    key = tmp_path / "keys" / "vault-master.key"
    assert not key.exists()
    await _set(vault)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == 32


async def test_a_group_readable_master_key_is_refused(tmp_path):
    key = tmp_path / "open.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o640)
    with pytest.raises(VaultError, match="chmod 600"):
        await FileKms(key).wrap(b"k" * 32, b"ctx")


async def test_most_specific_credential_wins_and_rotation_makes_a_new_version(vault):
    assert await vault.login_for("c1", "dev1", "HL-5370DW") is None
    await _set(vault, "customer-wide", scope=CredentialScope.CUSTOMER, target="")
    await _set(vault, "model-wide", scope=CredentialScope.MODEL, target="HL-5370DW ")
    assert (await vault.login_for("c1", "dev1", "hl-5370dw")).password == "model-wide"
    assert (await vault.login_for("c1", "dev9", "other")).password == "customer-wide"
    first = await _set(vault)
    second = await _set(vault, SECRET + "-2")
    assert (first.version, second.version) == (1, 2)
    login = await vault.login_for("c1", "dev1", "hl-5370dw")
    assert login is not None and login.password == SECRET + "-2" and login.version == 2
    assert SECRET not in repr(login)
    assert await vault.login_for("c2", "dev1", "hl-5370dw") is None  # another tenant sees nothing


async def test_erasing_removes_every_version_and_falls_back(vault, db):
    await _set(vault, "customer-wide", scope=CredentialScope.CUSTOMER, target="")
    await _set(vault)
    await _set(vault, SECRET + "-2")
    assert await vault.erase(customer_id="c1", dealer_id="d1", scope=CredentialScope.DEVICE, target="dev1",
                             actor="u-admin") == 2
    assert (await vault.login_for("c1", "dev1", None)).password == "customer-wide"
    async with db.session() as s:
        sealed = (await s.scalars(select(DeviceCredentialRow.sealed).where(
            DeviceCredentialRow.target == "dev1"))).all()
    assert sealed == [None, None]
    assert [c.scope for c in await vault.listing("c1")] == [CredentialScope.CUSTOMER]


async def test_sealed_value_moved_to_another_row_does_not_open(vault, db):
    await _set(vault)
    await _set(vault, "other", target="dev2")
    async with db.transaction() as s:
        stolen = await s.scalar(select(DeviceCredentialRow.sealed).where(DeviceCredentialRow.target == "dev1"))
        await s.execute(update(DeviceCredentialRow).where(DeviceCredentialRow.target == "dev2").values(sealed=stolen))
    with pytest.raises(VaultError, match="does not decrypt"):
        await vault.login_for("c1", "dev2", None)


async def test_another_master_key_cannot_open_the_tenant_key(vault, db, tmp_path):
    await _set(vault)
    other = CredentialVault(db, FileKms(tmp_path / "other.key"), ReadableAuditLog(db, None))
    with pytest.raises(VaultError, match="does not unwrap"):
        await other.login_for("c1", "dev1", None)


async def test_one_data_key_per_tenant(vault, db):
    await _set(vault)
    await _set(vault, customer="c2")
    async with db.session() as s:
        keys = (await s.scalars(select(VaultDataKeyRow))).all()
    assert sorted(k.customer_id for k in keys) == ["c1", "c2"] and keys[0].wrapped_key != keys[1].wrapped_key


@pytest.mark.parametrize(("account", "password", "kind"), [
    ("", SECRET, LoginKind.FORM), ("admin", "", LoginKind.FORM), ("admin", "a\r\nb", LoginKind.FORM),
    ("ad:min", SECRET, LoginKind.BASIC), ("admin", "x" * 300, LoginKind.DIGEST),
])
async def test_bad_credentials_are_refused_and_nothing_is_stored(vault, account, password, kind):
    with pytest.raises(CredentialInvalid):
        await vault.set(customer_id="c1", dealer_id="d1", scope=CredentialScope.DEVICE, target="dev1", kind=kind,
                        account=account, password=password, actor="u")
    assert await vault.listing("c1") == []


async def test_changes_are_audited_without_the_secret_and_the_database_holds_only_ciphertext(
        vault, db, database_url):
    await _set(vault)
    await _set(vault, SECRET + "-rotated")
    await vault.erase(customer_id="c1", dealer_id="d1", scope=CredentialScope.DEVICE, target="dev1", actor="u")
    await _set(vault, SECRET + "-third")
    events = await vault._audit.events()  # type: ignore[attr-defined]
    assert [e.type for e in events] == ["vault.credential_set", "vault.credential_rotated",
                                        "vault.credential_erased", "vault.credential_rotated"]
    assert events[0].details["account"] == "admin" and events[0].details["version"] == 1
    async with db.session() as s:
        rows = [r for table in ("audit_records", "audit_personal")
                for r in (await s.execute(text(f"SELECT * FROM {table}"))).all()]
        dump = " ".join(str(r) for r in rows)
        creds = (await s.execute(text("SELECT * FROM device_credentials"))).all()
    assert dump and SECRET not in dump
    assert all(SECRET.encode() not in bytes(r.sealed or b"") for r in creds)
    if database_url.startswith("sqlite"):
        path = Path(database_url.split(":///", 1)[1])
        await db.aclose()
        raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        assert SECRET.encode() not in raw and b"Sup3r" not in raw


async def test_migration_0013_creates_exactly_the_vault_models(db):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from printgate.store.models import Base

    ours = {"vault_data_keys", "device_credentials", "credential_use_settings", "credential_reveals"}

    def tables(d: object) -> set[str]:
        found: set[str] = set()
        for part in d if isinstance(d, (list, tuple)) else (d,):
            name = getattr(part, "name", None) or getattr(getattr(part, "table", None), "name", None)
            if isinstance(part, str):  # ("add_column", schema, table name, column)
                found.add(part)
            elif isinstance(name, str):
                found.add(name)
            elif isinstance(part, (list, tuple)):
                found |= tables(part)
        return found

    def diff(conn) -> list:  # type: ignore[no-untyped-def,type-arg]
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return [d for d in compare_metadata(ctx, Base.metadata) if ours & tables(d)]

    async with db.engine.connect() as conn:
        assert await conn.run_sync(diff) == []
