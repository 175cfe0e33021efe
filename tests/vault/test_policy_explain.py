"""`printgate policy explain` also explains the stored-credential right, from the real store."""

from __future__ import annotations

import pytest

from printgate.cli.policy import _explain
from printgate.domain import DeviceIdentity, Role
from printgate.domain.credentials import CredentialScope, LoginKind
from printgate.settings import Settings
from printgate.testing.audit import RecordingAuditSink
from printgate.testing.portal import create_user
from printgate.testing.tenancy import Tenancy
from printgate.vault import CredentialVault, FileKms


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_policy_explain_names_the_credential_and_why_it_would_or_would_not_be_used(db, tmp_path):
    await (Tenancy().chain(dealer="d1", customer="c1", site="s1", agent="a1", online=True)
           .device("dev1", "s1", "a1", "127.0.20.11", DeviceIdentity(model="HL-5370DW")).save(db))
    tech, _ = await create_user(db, Role.TECHNICIAN)
    viewer, _ = await create_user(db, Role.VIEWER)
    vault = CredentialVault(db, FileKms(tmp_path / "k"), RecordingAuditSink())
    settings = Settings(database_url=db.url)

    _allow, text = await _explain(settings, tech.id, "dev1", "127.0.0.1", 30.0)
    assert "Use stored device credentials:\nDENY" in text and "[credentials.none_stored]" in text

    await vault.set(customer_id="c1", dealer_id="d1", scope=CredentialScope.MODEL, target="hl-5370dw",
                    kind=LoginKind.FORM, account="admin", password="pw-123456", actor="x")
    _allow, text = await _explain(settings, tech.id, "dev1", "127.0.0.1", 30.0)
    assert "(model credential v1, account admin):\nALLOW" in text and "[credentials.stored]" in text
    assert "pw-123456" not in text

    _allow, text = await _explain(settings, viewer.id, "dev1", "127.0.0.1", 30.0)
    assert "[credentials.role_not_permitted]" in text

    await vault.set_forbidden(customer_id="c1", dealer_id="d1", forbidden=True, actor="x")
    _allow, text = await _explain(settings, tech.id, "dev1", "127.0.0.1", 30.0)
    assert "[credentials.customer_forbids]" in text
