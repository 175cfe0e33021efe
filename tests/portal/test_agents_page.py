"""/agents as dealer admins use it, against a real mTLS gRPC agent channel on the
same store: a token shown once enrols a real agent (and only once), revoking in
the portal cuts a connected agent within seconds, other dealers get 404."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from agent.channel.enroll import EnrolledIdentity, enroll
from agent.channel.grpc_client import GrpcChannel
from agent.errors import EnrolmentFailed
from gateway.channel.ca import AgentCA
from gateway.channel.enrolment import ChannelFacts
from gateway.channel.grpc_server import AgentChannelServer
from gateway.channel.handlers import ChannelHandlers
from gateway.channel.hub import AgentHub
from lab.ports import free_tcp_port
from portal.app import create_app
from printgate.domain import Role, User
from printgate.settings import PortalSettings
from printgate.store import channel as channel_store
from printgate.store import tenants
from printgate.store.db import Database
from printgate.testing.audit import RecordingAuditSink
from printgate.testing.broker import PolicyBroker
from printgate.testing.database import fresh_database
from printgate.testing.portal import Clock, create_user, csrf_of, served, sign_in
from printgate.testing.tenancy import Tenancy
from printgate.wire import agent_pb2 as pb
from tests.portal.conftest import Portal

TOKEN_RE = re.compile(r"printgate agent enroll --url (\S+) --token (pgenrol_[A-Za-z0-9_-]+)")


@dataclass
class AgentsCloud:
    portal: Portal
    server: AgentChannelServer
    ca: AgentCA
    hub: AgentHub
    audit: RecordingAuditSink
    tmp: Path

    async def admin(self, dealer: str = "d1") -> tuple[User, str | None]:
        return await create_user(self.portal.db, Role.DEALER_ADMIN, dealer=dealer)


async def _seed(db: Database) -> None:
    await (Tenancy().dealer("d1").dealer("d2")
           .customer("c1", "d1", "Customer One").customer("c9", "d2", "Other dealer's customer")
           .site("s1", "c1", "Head office").site("s9", "c9", "Elsewhere")
           .save(db))


def _no_handlers() -> ChannelHandlers:
    async def inventory(agent_id: str, devices: list[pb.DiscoveredDevice]) -> None: ...
    async def readings(agent_id: str, batch_id: str, payload: bytes) -> None: ...
    async def presence(agent_id: str, online: bool) -> None: ...
    async def result(agent_id: str, r: pb.CommandResult) -> None: ...
    return ChannelHandlers(inventory, readings, presence, result)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def cloud(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AgentsCloud]:
    tmp = tmp_path_factory.mktemp(f"agents-{request.param}")
    async with fresh_database(request.param, tmp) as db:
        await _seed(db)
        ca = AgentCA.load_or_create(tmp / "ca")
        hub = AgentHub(ca.command_key)
        audit = RecordingAuditSink()
        server = AgentChannelServer(
            "127.0.0.1", free_tcp_port(), ca=ca, db=db, audit=audit, hub=hub, handlers=_no_handlers(),
            enrol_port=free_tcp_port(), revocation_poll_s=0.5,
            facts=ChannelFacts(relay_address="127.0.0.1:1", relay_host_key_fingerprint="SHA256:test"),
        )
        await server.start()
        try:
            port, clock = free_tcp_port(), Clock()
            settings = PortalSettings(port=port, public_url=f"http://127.0.0.1:{port}",
                                      secret_key=SecretStr(secrets.token_urlsafe(32)), agent_enrol_url=server.enrol_target)
            app = create_app(settings, db=db, broker=PolicyBroker(db, clock, settings.public_url),
                             audit=audit, clock=clock)
            async with served(app, port) as url:
                yield AgentsCloud(Portal(url, db, audit, clock, settings), server, ca, hub, audit, tmp)
        finally:
            await server.aclose()


@pytest.fixture
async def browser_client(cloud: AgentsCloud) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=cloud.portal.url, follow_redirects=False, timeout=15,
                                 headers={"accept": "text/html"}) as c:
        yield c


async def _signed_in(c: httpx.AsyncClient, cloud: AgentsCloud, user: User, secret: str | None) -> None:
    await sign_in(c, cloud.portal, user, secret)


async def _mint(c: httpx.AsyncClient, site: str = "s1") -> httpx.Response:
    page = await c.get("/agents")
    assert page.status_code == 200, page.text
    return await c.post(f"/agents/sites/{site}/enrolment-token", data={"csrf_token": csrf_of(page.text)})


async def _enrol_via_page(c: httpx.AsyncClient, cloud: AgentsCloud, name: str) -> EnrolledIdentity:
    r = await _mint(c)
    m = TOKEN_RE.search(r.text)
    assert r.status_code == 200 and m, r.text
    return await enroll(m.group(1), m.group(2), cloud.tmp / name, ca_cert_pem=cloud.ca.cert_pem)


async def test_enrolment_token_is_shown_once_and_enrols_a_real_agent_once(
        cloud: AgentsCloud, browser_client: httpx.AsyncClient) -> None:
    admin, secret = await cloud.admin()
    await _signed_in(browser_client, cloud, admin, secret)
    page = await browser_client.get("/agents")
    assert 'data-site-id="s1"' in page.text and 's9' not in page.text
    r = await _mint(browser_client)
    m = TOKEN_RE.search(r.text)
    assert r.status_code == 200 and m, r.text
    url, token = m.groups()
    assert url == cloud.server.enrol_target  # the exact command, with the gateway's enrolment address
    assert r.headers["cache-control"] == "no-store"

    identity = await enroll(url, token, cloud.tmp / "once-1", ca_cert_pem=cloud.ca.cert_pem)
    assert identity.site_id == "s1"
    # a second agent (another key) cannot use the token: it already enrolled the first one
    with pytest.raises(EnrolmentFailed, match=r"already enrolled agent .* with another key"):
        await enroll(url, token, cloud.tmp / "once-2", ca_cert_pem=cloud.ca.cert_pem)

    listing = await browser_client.get("/agents")
    assert token not in listing.text  # shown once: never again
    row = re.search(rf'<tr data-agent-id="{identity.agent_id}">(.*?)</tr>', listing.text, re.S)
    assert row and "offline" in row.group(1) and "no valid certificate" not in row.group(1)
    created = [e for e in cloud.audit.of("agent.enrolment_token.created") if e.actor == admin.email]
    assert len(created) == 1 and created[0].details["site_id"] == "s1" and created[0].customer_id == "c1"
    assert all(token not in repr(e) for e in cloud.audit.events)  # the token is never audited


async def test_revoke_from_the_page_cuts_a_connected_agent_within_seconds(
        cloud: AgentsCloud, browser_client: httpx.AsyncClient) -> None:
    admin, secret = await cloud.admin()
    await _signed_in(browser_client, cloud, admin, secret)
    identity = await _enrol_via_page(browser_client, cloud, "revoke-me")
    ch = GrpcChannel(cloud.server.target, identity)
    await ch.connect()
    try:
        await ch.wait_connected(10)
        assert cloud.hub.is_online(identity.agent_id)
        confirm = await browser_client.get(f"/agents/{identity.agent_id}/revoke")
        assert confirm.status_code == 200 and 'name="confirm"' in confirm.text
        unconfirmed = await browser_client.post(f"/agents/{identity.agent_id}/revoke",
                                                data={"csrf_token": csrf_of(confirm.text), "reason": "x"})
        assert unconfirmed.status_code == 422
        await asyncio.sleep(1.2)  # two revocation polls: nothing happened
        assert cloud.hub.is_online(identity.agent_id)

        r = await browser_client.post(f"/agents/{identity.agent_id}/revoke", data={
            "csrf_token": csrf_of(confirm.text), "reason": "laptop stolen", "confirm": "yes"})
        assert r.status_code == 303 and r.headers["location"] == "/agents"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while (cloud.hub.is_online(identity.agent_id) or ch.state != "refused") and loop.time() < deadline:
            await asyncio.sleep(0.05)
        assert not cloud.hub.is_online(identity.agent_id) and ch.state == "refused"
    finally:
        await ch.aclose()
    listing = await browser_client.get("/agents")
    row = re.search(rf'<tr data-agent-id="{identity.agent_id}">(.*?)</tr>', listing.text, re.S)
    assert row and "revoked" in row.group(1) and "Revoke" not in row.group(1) and "laptop stolen" in row.group(1)
    revoked = [e for e in cloud.audit.of("agent.revoked") if e.details.get("agent_id") == identity.agent_id]
    assert len(revoked) == 1 and revoked[0].actor == admin.email and revoked[0].details["reason"] == "laptop stolen"


async def test_another_dealers_admin_gets_404_and_changes_nothing(cloud: AgentsCloud) -> None:
    own, own_secret = await cloud.admin("d1")
    other, other_secret = await cloud.admin("d2")
    async with httpx.AsyncClient(base_url=cloud.portal.url, timeout=15, headers={"accept": "text/html"}) as a, \
            httpx.AsyncClient(base_url=cloud.portal.url, timeout=15, headers={"accept": "text/html"}) as b:
        await _signed_in(a, cloud, own, own_secret)
        await _signed_in(b, cloud, other, other_secret)
        identity = await _enrol_via_page(a, cloud, "not-yours")
        page = await b.get("/agents")
        assert identity.agent_id not in page.text and "s1" not in page.text
        token = csrf_of(page.text)
        assert (await b.get(f"/agents/{identity.agent_id}/revoke")).status_code == 404
        r = await b.post(f"/agents/{identity.agent_id}/revoke",
                         data={"csrf_token": token, "confirm": "yes", "reason": "hostile"})
        assert r.status_code == 404
        assert (await b.post("/agents/sites/s1/enrolment-token", data={"csrf_token": token})).status_code == 404
        assert (await b.post("/agents/no-such-agent/revoke",
                             data={"csrf_token": token, "confirm": "yes"})).status_code == 404
    async with cloud.portal.db.session() as s:
        agent = await tenants.get_agent(s, identity.agent_id)
        certs = await channel_store.certificates_of(s, identity.agent_id)
    assert agent is not None and not agent.revoked and all(c.revoked_at is None for c in certs)


async def test_only_dealer_admins_reach_the_agents_page_and_posts_need_csrf(
        cloud: AgentsCloud, browser_client: httpx.AsyncClient) -> None:
    tech, secret = await create_user(cloud.portal.db, Role.TECHNICIAN, dealer="d1")
    await _signed_in(browser_client, cloud, tech, secret)
    assert (await browser_client.get("/agents")).status_code == 403
    devices = await browser_client.get("/devices")
    r = await browser_client.post("/agents/sites/s1/enrolment-token", data={"csrf_token": csrf_of(devices.text)})
    assert r.status_code == 403
    assert 'href="/agents"' not in devices.text

    admin, admin_secret = await cloud.admin()
    async with httpx.AsyncClient(base_url=cloud.portal.url, timeout=15, headers={"accept": "text/html"}) as c:
        await _signed_in(c, cloud, admin, admin_secret)
        before = len(cloud.audit.of("agent.enrolment_token.created"))
        r = await c.post("/agents/sites/s1/enrolment-token", data={"csrf_token": "forged"})
        assert r.status_code == 403 and "CSRF" in r.text
        r = await c.post("/agents/sites/s1/enrolment-token")
        assert r.status_code == 403
        assert len(cloud.audit.of("agent.enrolment_token.created")) == before
        assert 'href="/agents"' in (await c.get("/agents")).text


async def test_token_page_shows_a_placeholder_when_the_enrolment_address_is_not_configured(
        portal: Portal, client: httpx.AsyncClient) -> None:
    assert portal.settings.agent_enrol_url == ""
    admin, secret = await create_user(portal.db, Role.DEALER_ADMIN, dealer="d1")
    await sign_in(client, portal, admin, secret)
    page = await client.get("/agents")
    r = await client.post("/agents/sites/s-c-open/enrolment-token", data={"csrf_token": csrf_of(page.text)})
    assert r.status_code == 200
    assert re.search(r"printgate agent enroll --url &lt;gateway-host&gt;:&lt;enrolment-port&gt; --token pgenrol_",
                     r.text), r.text
    assert "Replace" in r.text


async def test_last_seen_is_the_latest_heartbeat_not_the_connect_time(cloud: AgentsCloud) -> None:
    """Issue 15: "Last seen" showed when the agent connected; its heartbeats say it is still there."""
    from datetime import UTC, datetime, timedelta

    from printgate.store.agent_health import AgentHealth, record_health

    admin, secret = await cloud.admin("d1")
    async with httpx.AsyncClient(base_url=cloud.portal.url, timeout=15, headers={"accept": "text/html"}) as c:
        await _signed_in(c, cloud, admin, secret)
        identity = await _enrol_via_page(c, cloud, "heartbeats")
        connected = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
        async with cloud.portal.db.transaction() as s:
            await tenants.set_agent_presence(s, identity.agent_id, online=True, at=connected)
            await record_health(s, AgentHealth(identity.agent_id, reported_at=connected + timedelta(hours=3, minutes=7)))
        page = (await c.get("/agents")).text
    row = page[page.index(f'data-agent-id="{identity.agent_id}"'):]
    cell = re.search(r'<td class="last-seen">([^<]*)</td>', row[:row.index("</tr>")])
    assert cell and cell.group(1) == "2026-12-05 11:07", row[:600]
