"""Three real ``printgate serve`` nodes behind a real HAProxy (the shipped deploy/haproxy/haproxy.cfg
with the backends and host map ``printgate nodes haproxy`` generates) on one PostgreSQL, two real
agents (``printgate agent run``) reaching the nodes through HAProxy, the lab's printers, Chromium
(issue 18):

- a session's page loads through HAProxy from the node that owns it, routed by the node label in its
  host; another node's proxy answers that host with its "served by another node" page;
- a session opened from the portal of a node that does not hold the agent's stream works through
  HAProxy (owned and served by the stream's node);
- ``kill -9`` of the node holding agent A: A's session ends, audited by the node that took it over;
  A reconnects to another node; agent B's session on another node keeps loading in Chromium;
- a rolling restart (SIGTERM, start again) of every node: zero failed page loads of B's session
  while the other nodes restart; B's own node drains: the session ends "gateway maintenance"
  (audited), B reconnects elsewhere, the node exits 0;
- ``printgate audit verify`` over the records and checkpoints all three nodes wrote.

The nodes share the module (one start-up), with a 3 s lease and a 2 s drain grace."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import pyotp
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from agent.channel.enroll import enroll
from gateway.broker import DRAIN_REASON, NODE_LOST_REASON
from gateway.session_hosts import node_label
from lab.catalog import PRINTERS, LabDevice
from lab.ews.server import EwsLab
from lab.ports import free_tcp_port
from lab.snmp import SnmpLab
from portal.auth.passwords import hash_password
from printgate.domain import (
    Customer,
    CustomerId,
    Dealer,
    DealerId,
    DwaState,
    Role,
    Site,
    SiteId,
    User,
    UserId,
    event_types,
)
from printgate.store import channel as channel_store
from printgate.store import devices, nodes, sessions, tenants
from printgate.store.db import Database
from printgate.testing.audit import stored_records
from printgate.testing.database import create_pg_database, drop_pg_database
from tests.faults.agent_proc import start_agent, stop, write_config
from tests.scale.cluster import PRINTGATE, Cluster, NodeProc, until

pytestmark = pytest.mark.postgres

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]
DEALER = Dealer(DealerId("d-scale"), "Scale Print Services")
CUSTOMER = Customer(CustomerId("c-scale"), DEALER.id, "Scale Offices")
PASSWORD = "three nodes, one trail"


@dataclass
class Agent:
    name: str
    site: SiteId
    printer: LabDevice
    config: Path
    proc: asyncio.subprocess.Process | None = None
    agent_id: str = ""


@dataclass
class Session:
    """A technician's open session in its own Chromium context."""

    session_id: str
    node_id: str
    origin: str
    page: Page
    printer: LabDevice


@dataclass
class Scale:
    cluster: Cluster
    db: Database
    browser: Browser
    agents: dict[str, Agent]
    sessions: dict[str, Session] = field(default_factory=dict)
    technicians: int = 0


async def _seed(db: Database) -> None:
    async with db.transaction() as s:
        await tenants.add_dealer(s, DEALER)
        await s.flush()
        await tenants.add_customer(s, CUSTOMER)
        await s.flush()
        for site in ("site-a", "site-b"):
            await tenants.add_site(s, Site(SiteId(site), CUSTOMER.id, site))


async def _technician(scale: Scale) -> tuple[str, str]:
    """A new technician of the dealer (one per sign-in: a TOTP code is accepted once); (email, secret)."""
    scale.technicians += 1
    email, secret = f"tech{scale.technicians}@scale.example", pyotp.random_base32()
    async with scale.db.transaction() as s:
        await tenants.add_user(s, User(UserId(f"tech-{scale.technicians}"), email, "Tech",
                                       frozenset({Role.TECHNICIAN}), dealer_id=DEALER.id),
                               password_hash=hash_password(PASSWORD), totp_secret=secret)
    return email, secret


async def _stream_node(db: Database, agent_id: str) -> str | None:
    async with db.session() as s:
        return await nodes.stream_node(s, agent_id)


@pytest.fixture(scope="module")
async def scale() -> AsyncIterator[Scale]:
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed (scripts/system-deps.sh installs it)")
    try:
        url = create_pg_database()
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 unavailable: {exc}")
    base = Path(tempfile.mkdtemp(prefix="pg3n-"))  # short: the relays' Unix sockets live below /tmp
    cluster = Cluster(base, url)
    printers = {"a": PRINTERS[0], "b": PRINTERS[1]}
    agents: dict[str, Agent] = {}
    db = Database(url)
    ews_port = free_tcp_port()
    try:
        async with SnmpLab({p.ip: p.name for p in printers.values()}, workdir=base / "snmpsim") as snmp, \
                EwsLab(list(printers.values()), port=ews_port), async_playwright() as pw:
            first = cluster.nodes[0]
            first.start()
            await cluster.wait_state(db, first, nodes.ACTIVE)
            cluster.share_keys()  # the keys every node must share (docs/scale-out.md)
            for node in cluster.nodes[1:]:
                node.start()
            for node in cluster.nodes:
                await cluster.wait_serving(db, node)
            await _seed(db)
            assert cluster.haproxy_map().startswith("changed: 3 node(s)")
            cluster.start_haproxy()

            async def lb_ready() -> bool:
                try:
                    async with httpx.AsyncClient(timeout=2) as client:
                        return (await client.get(cluster.lb_portal + "/readyz")).status_code == 200
                except httpx.HTTPError:
                    return False
            await until("HAProxy serves the portal", lb_ready, 30)

            ca = (first.data / "agent-ca" / "agent-ca.crt").read_bytes()
            for name, printer in printers.items():  # one after the other: leastconn puts them on two nodes
                async with db.transaction() as s:
                    token = await channel_store.create_enrolment_token(s, f"site-{name}", ttl=timedelta(minutes=5),
                                                                       created_by="test")
                data = base / f"agent-{name}"
                identity = await enroll(cluster.lb_enrol, token, data, ca_cert_pem=ca)
                config = write_config(base / f"agent-{name}.toml", {
                    "cloud_grpc": cluster.lb_channel, "data_dir": str(data), "targets": [printer.ip],
                    "snmp_port": snmp.port, "ews_candidates": [f"{ews_port}/https", f"{ews_port}/http"],
                    "snmp_timeout": 1.0, "snmp_retries": 1, "stop_deadline_seconds": 5.0})
                agent = Agent(name, SiteId(f"site-{name}"), printer, config, agent_id=identity.agent_id)
                agent.proc = await start_agent(config, base / f"agent-{name}.log")
                agents[name] = agent

                async def streaming(agent: Agent = agent) -> bool:
                    return await _stream_node(db, agent.agent_id) is not None
                await until(f"agent {name} connected through HAProxy", streaming, 60)

            async def discovered() -> bool:
                async with db.session() as s:
                    found = await devices.list_devices_of_dealer(s, DEALER.id)
                return {d.ip for d, _ in found} >= {p.ip for p in printers.values()}
            await until("both printers discovered", discovered, 120)
            browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            try:
                yield Scale(cluster, db, browser, agents)
            finally:
                await browser.close()
                for agent in agents.values():
                    if agent.proc is not None and agent.proc.returncode is None:
                        await stop(agent.proc)
    finally:
        cluster.stop()
        await db.aclose()
        drop_pg_database(url)
        if not os.environ.get("PRINTGATE_KEEP_SCALE_DIR"):  # set: the logs of the nodes and HAProxy stay
            shutil.rmtree(base, ignore_errors=True)


async def _open(scale: Scale, agent: Agent, via: NodeProc | None = None) -> Session:
    """Sign in at the portal of ``via`` (default: the node holding the agent's stream) and open the
    printer's web page: it loads through HAProxy from the node holding the stream (the session's
    owner), by the node label in its host."""
    node_id = await _stream_node(scale.db, agent.agent_id)
    assert node_id is not None
    node = via or scale.cluster.node(node_id)
    email, secret = await _technician(scale)
    context = await scale.browser.new_context()
    page = await context.new_page()
    portal = scale.cluster.portal_of(node)
    await page.goto(portal + "/login")
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.fill("input[name=code]", pyotp.TOTP(secret).now())
    await page.get_by_role("button", name="Verify").click()
    await page.goto(portal + "/devices")
    row = page.locator("tr", has_text=re.compile(re.escape(agent.printer.ip) + r"(?!\d)"))
    async with context.expect_page() as opened:
        await row.get_by_role("button", name="Open web page").click()
    tab = await opened.value
    label = node_label(node_id)
    host = re.compile(rf"^(http://s-([0-9a-f]+)-{label}\.dwa\.localhost:{scale.cluster.lb.proxy})/")
    try:
        await tab.wait_for_url(host, timeout=30_000)
    except Exception as exc:
        raise AssertionError(f"the session page did not open via {node.node_id}: at {tab.url}: "
                             f"{(await tab.locator('body').inner_text())[:1500]}") from exc
    await expect(tab.locator("body")).to_contain_text(agent.printer.name, timeout=30_000)
    found = host.match(tab.url)
    assert found is not None
    return Session(found.group(2), node_id, found.group(1), tab, agent.printer)


async def _load(session: Session) -> bool:
    try:
        response = await session.page.goto(session.origin + "/", timeout=10_000)
    except Exception:
        return False
    return response is not None and response.status == 200 and session.printer.name in await session.page.content()


class Loader:
    """Loads a session's page in Chromium again and again; counts the loads that failed."""

    def __init__(self, session: Session) -> None:
        self.session, self.ok, self.failed = session, 0, 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            if await _load(self.session):
                self.ok += 1
            else:
                self.failed += 1
            await asyncio.sleep(0.2)

    async def __aenter__(self) -> Loader:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def _session_state(db: Database, sid: str) -> tuple[DwaState, str]:
    async with db.session() as s:
        found = await sessions.load_session(s, sid)
    assert found is not None
    return found.state, found.history[-1].reason if found.history else ""


async def _session(scale: Scale, name: str) -> Session:
    """Agent ``name``'s session of an earlier test of this module, or a new one when this test
    runs on a fresh ``scale`` (pytest-xdist may build the module's fixture again between tests)."""
    if name not in scale.sessions:
        scale.sessions[name] = await _open(scale, scale.agents[name])
    return scale.sessions[name]


async def test_pages_load_through_haproxy_from_the_node_owning_the_session(scale: Scale) -> None:
    a_node = await _stream_node(scale.db, scale.agents["a"].agent_id)
    b_node = await _stream_node(scale.db, scale.agents["b"].agent_id)
    assert a_node != b_node, "HAProxy (leastconn) put the two agents on two nodes"
    scale.sessions["b"] = await _open(scale, scale.agents["b"])
    # the session host names its node: another node's proxy refuses it with its own page
    session = scale.sessions["b"]
    other = next(n for n in scale.cluster.nodes if n.node_id != session.node_id)
    async with httpx.AsyncClient(timeout=5) as client:
        answer = await client.get(f"http://{other.ip}:{scale.cluster.ports.proxy}/",
                                  headers={"host": session.origin.split("//", 1)[1]})
    assert answer.status_code == 421 and "served by gateway node" in answer.text
    assert node_label(session.node_id) in answer.text


async def test_a_session_opened_on_another_node_works_through_haproxy(scale: Scale) -> None:
    agent = scale.agents["a"]
    owner = await _stream_node(scale.db, agent.agent_id)
    via = next(n for n in scale.cluster.nodes if n.node_id != owner)
    session = await _open(scale, agent, via=via)  # decided on `via`, set up by the stream's node
    assert session.node_id == owner and await _load(session)
    records = await stored_records(scale.db)
    assert any(r.type == event_types.POLICY_DECISION and r.session_id == session.session_id for r in records)
    scale.sessions["a"] = session  # the next test kills its node


async def test_kill_9_ends_only_that_nodes_sessions_and_its_agent_reconnects_elsewhere(scale: Scale) -> None:
    a, b = await _session(scale, "a"), await _session(scale, "b")
    assert a.node_id != b.node_id, "the two agents' sessions are on two nodes (HAProxy leastconn)"
    victim = scale.cluster.node(a.node_id)
    async with Loader(b) as loads:
        killed = time.monotonic()
        victim.kill()

        async def a_ended() -> bool:
            return (await _session_state(scale.db, a.session_id))[0] is DwaState.CLOSED
        await until("the taker ends A's session", a_ended, scale.cluster.lease_s + 20)
        took = time.monotonic() - killed

        async def a_elsewhere() -> bool:
            node = await _stream_node(scale.db, scale.agents["a"].agent_id)
            return node is not None and node != victim.node_id
        await until("agent A reconnects to another node", a_elsewhere, 60)
        await asyncio.sleep(1)  # B's page keeps loading a little longer
    print(f"node {victim.node_id} taken over {took:.1f} s after kill -9; B's page: {loads.ok} loads, "
          f"{loads.failed} failed")
    assert loads.failed == 0 and loads.ok >= 5
    assert NODE_LOST_REASON in (await _session_state(scale.db, a.session_id))[1]
    records = await stored_records(scale.db)
    takeovers = [r for r in records if r.type == event_types.GATEWAY_NODE_TAKEN_OVER
                 and r.details["node"] == victim.node_id]
    assert len(takeovers) == 1 and takeovers[0].details["sessions_ended"] == 1
    ends = [r for r in records if r.type == event_types.DWA_SESSION_CLOSED and r.session_id == a.session_id]
    assert len(ends) == 1 and ends[0].details["owner_node"] == victim.node_id
    assert ends[0].details["ended_by_node"] == takeovers[0].details["by_node"] != victim.node_id
    assert await _load(b)
    victim.start()  # back with the same id, label and backend
    await scale.cluster.wait_serving(scale.db, victim)


async def _sigterm(scale: Scale, node: NodeProc) -> float:
    assert node.proc is not None
    began = time.monotonic()
    node.proc.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(node.proc.wait, 60)
    assert code == 0, node.tail()
    return time.monotonic() - began


async def test_rolling_restart_keeps_other_nodes_sessions_and_drains_its_own(scale: Scale) -> None:
    b = await _session(scale, "b")
    order = [n for n in scale.cluster.nodes if n.node_id != b.node_id] + [scale.cluster.node(b.node_id)]
    for node in order[:-1]:
        async with Loader(b) as loads:
            took = await _sigterm(scale, node)
            node.start()
            await scale.cluster.wait_serving(scale.db, node)
        print(f"{node.node_id}: stopped in {took:.1f} s and back; B's page {loads.ok} loads, {loads.failed} failed")
        assert loads.failed == 0 and loads.ok >= 3

    own = order[-1]  # B's node drains: B's session ends after the grace, B goes to another node
    assert own.proc is not None
    began = time.monotonic()
    own.proc.send_signal(signal.SIGTERM)
    async with httpx.AsyncClient(timeout=2) as client:
        async def not_ready() -> bool:  # HAProxy takes it out of the portal backend
            answer = await client.get(f"{scale.cluster.portal_of(own)}/readyz")
            return answer.status_code == 503 and "draining" in answer.json()["checks"].get("node", "")
        await until(f"{own.node_id} says not ready while it drains", not_ready, 2)
    code = await asyncio.to_thread(own.proc.wait, 60)
    assert code == 0, own.tail()
    took = time.monotonic() - began
    state, reason = await _session_state(scale.db, b.session_id)
    assert state is DwaState.CLOSED and reason == DRAIN_REASON
    assert took >= 1.5, took  # the 2 s grace was given to the live session

    async def b_elsewhere() -> bool:
        node = await _stream_node(scale.db, scale.agents["b"].agent_id)
        return node is not None and node != own.node_id
    await until("agent B reconnects to another node", b_elsewhere, 60)
    told = (scale.cluster.base / "agent-b.log").read_text(errors="replace")
    assert f"gateway node {own.node_id} is draining for maintenance" in told  # the agent logs why
    own.start()
    await scale.cluster.wait_serving(scale.db, own)
    records = await stored_records(scale.db)
    drained = {r.details["node"]: r.details for r in records if r.type == event_types.GATEWAY_NODE_DRAINED}
    assert set(drained) == {n.node_id for n in scale.cluster.nodes}
    assert drained[own.node_id]["ended_by_drain"] == 1
    closes = [r for r in records if r.type == event_types.DWA_SESSION_CLOSED and r.session_id == b.session_id]
    assert len(closes) == 1 and closes[0].details["reason"] == DRAIN_REASON


async def test_audit_verify_over_the_records_of_all_nodes(scale: Scale) -> None:
    verify = await asyncio.create_subprocess_exec(
        PRINTGATE, "audit", "verify", "--public-key", str(scale.cluster.nodes[0].data / "audit-public.pem"),
        "--database-url", scale.cluster.url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await verify.communicate()
    assert verify.returncode == 0, out.decode()
