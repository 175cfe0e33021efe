"""Channel repository on both backends (SQLite file and the real PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from printgate.domain import AgentCertificate, AgentId, SiteId
from printgate.errors import NotFound, TokenInvalid
from printgate.store import channel as store
from printgate.store.db import Database
from printgate.store.models.channel import EnrolmentTokenRow
from tests.channel.conftest import make_tenancy

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


async def test_token_is_hashed_one_time_and_expires(db: Database) -> None:
    site, _ = await make_tenancy(db)
    async with db.transaction() as s:
        token = await store.create_enrolment_token(s, site, ttl=timedelta(minutes=10),
                                                   created_by="admin", now=T0)
        expired = await store.create_enrolment_token(s, site, ttl=timedelta(minutes=1),
                                                     created_by="admin", now=T0)
    async with db.session() as s:
        stored = [r.token_hash for r in (await s.execute(EnrolmentTokenRow.__table__.select())).all()]
    assert token not in str(stored) and store.hash_token(token) in stored
    async with db.transaction() as s:
        assert await store.redeem_enrolment_token(s, token, agent_id="agt-1", now=T0) == site
    async with db.transaction() as s:
        with pytest.raises(TokenInvalid):
            await store.redeem_enrolment_token(s, token, agent_id="agt-2", now=T0)
    async with db.transaction() as s:
        with pytest.raises(TokenInvalid):
            await store.redeem_enrolment_token(s, expired, agent_id="agt-3", now=T0 + timedelta(minutes=2))
    async with db.transaction() as s:
        with pytest.raises(NotFound):
            await store.create_enrolment_token(s, "no-such-site", ttl=timedelta(minutes=1), created_by="a")


async def test_revocation_and_batch_idempotency(db: Database) -> None:
    site, _ = await make_tenancy(db)
    cert = AgentCertificate(serial="abc123", agent_id=AgentId("agt-9"), site_id=SiteId(site),
                            fingerprint="f" * 64, not_before=T0, not_after=T0 + timedelta(hours=24))
    async with db.transaction() as s:
        await store.ensure_agent(s, "agt-9", site, name="host")
        await store.record_certificate(s, cert)
    async with db.transaction() as s:
        assert await store.revoke_agent(s, "agt-9", reason="stolen", now=T0) == 1
    async with db.session() as s:
        assert await store.revoked_serials(s) == {"abc123"}
        got = await store.get_certificate(s, "abc123")
    assert got is not None and not got.is_valid(T0 + timedelta(hours=1))


async def test_crl_lists_revoked_certificates_until_they_expire(db: Database) -> None:
    site, _ = await make_tenancy(db)
    async with db.transaction() as s:
        await store.ensure_agent(s, "agt-crl", site, name="host")
        for serial, hours in (("aa01", 1), ("aa02", 48)):
            await store.record_certificate(s, AgentCertificate(
                serial=serial, agent_id=AgentId("agt-crl"), site_id=SiteId(site), fingerprint="f" * 64,
                not_before=T0, not_after=T0 + timedelta(hours=hours)))
    async with db.transaction() as s:
        assert await store.revoke_agent(s, "agt-crl", reason="stolen", now=T0) == 2
    async with db.session() as s:
        assert await store.revoked_serials(s) == {"aa01", "aa02"}
        assert await store.revoked_serials(s, valid_at=T0 + timedelta(hours=2)) == {"aa02"}
        assert await store.agent_standing(s, "agt-crl") == "agent_revoked"
        assert await store.certificate_standing(s, "aa02", agent_id="agt-crl", site_id=site,
                                                now=T0) == "agent_revoked"
        assert not await store.reserve_agent_for_issue(s, "agt-crl")
