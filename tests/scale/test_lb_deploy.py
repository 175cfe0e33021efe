"""Deploying behind a load balancer (issue 18 findings 3, 7, 8, 10, 13): one real ``printgate serve``
node on its own loopback address behind a real HAProxy (the shipped deploy/haproxy/haproxy.cfg and
the backends ``printgate nodes haproxy`` generates) listening on another address, 127.0.0.7, that is
only in the node's ``[channel] public_names``:

- an agent enrols and connects through the balancer by that name (server certificate SAN);
- ``printgate serve`` tells the balancer's enrolment and channel addresses, not the node's own;
- a host without a node label (s-<id>.<domain>, foo.<domain>) reaches a node, not HAProxy's 503;
- ``[portal] trusted_proxies``: X-Forwarded-For believed from a listed peer, ignored from another;
- ``printgate nodes forget`` refuses a live node and forgets a stopped one;
- a paused node (SIGSTOP) leaves the channel and enrolment backends too (health-checked at /readyz).
One node, started once for the module (PostgreSQL: the deployment this is about)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from agent.channel.enroll import enroll
from audit.query import AuditFilter, search
from printgate.domain import Customer, CustomerId, Dealer, DealerId, Site, SiteId, event_types
from printgate.store import channel as channel_store
from printgate.store import nodes, tenants
from printgate.store.db import Database
from printgate.testing.database import create_pg_database, drop_pg_database
from printgate.testing.portal import csrf_of
from tests.faults.agent_proc import start_agent, stop, write_config
from tests.scale.cluster import PRINTGATE, Cluster, until

pytestmark = pytest.mark.postgres

LB = "127.0.0.7"  # the balancer's address: in public_names only (not grpc_host, localhost or 127.0.0.1)
TRUSTED = "127.0.0.77"  # the one peer whose X-Forwarded-For the node believes
DEALER = Dealer(DealerId("d-lb"), "LB Print Services")
CUSTOMER = Customer(CustomerId("c-lb"), DEALER.id, "LB Offices")


@dataclass
class Lb:
    cluster: Cluster
    db: Database
    base: Path


@pytest.fixture(scope="module")
async def lb() -> AsyncIterator[Lb]:
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed (scripts/system-deps.sh installs it)")
    try:
        url = create_pg_database()
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 unavailable: {exc}")
    base = Path(tempfile.mkdtemp(prefix="pglb-"))
    cluster = Cluster(base, url, count=1, lease_s=6.0, renew_s=1.0)
    cluster.lb_addr = LB
    node = cluster.nodes[0]
    text = node.config.read_text().replace("[portal]\n", f'[portal]\ntrusted_proxies = ["{TRUSTED}"]\n', 1)
    node.config.write_text(text + f'[channel]\npublic_names = ["{LB}"]\npublic_address = "{cluster.lb_channel}"\n'
                                  f'public_enrol_address = "{cluster.lb_enrol}"\n')
    db = Database(url)
    try:
        node.start()
        await cluster.wait_serving(db, node)
        async with db.transaction() as s:
            await tenants.add_dealer(s, DEALER)
            await s.flush()
            await tenants.add_customer(s, CUSTOMER)
            await s.flush()
            await tenants.add_site(s, Site(SiteId("site-lb"), CUSTOMER.id, "site-lb"))
        assert cluster.haproxy_map().startswith("changed: 1 node(s)")
        cluster.start_haproxy()

        async def lb_ready() -> bool:
            try:
                async with httpx.AsyncClient(timeout=2) as client:
                    return (await client.get(cluster.lb_portal + "/readyz")).status_code == 200
            except httpx.HTTPError:
                return False
        await until("HAProxy serves the portal", lb_ready, 30)
        yield Lb(cluster, db, base)
    finally:
        for n in cluster.nodes:
            if n.proc is not None and n.proc.poll() is None:
                os.killpg(n.proc.pid, signal.SIGCONT)
        cluster.stop()
        await db.aclose()
        drop_pg_database(url)
        if not os.environ.get("PRINTGATE_KEEP_SCALE_DIR"):
            shutil.rmtree(base, ignore_errors=True)


async def test_an_agent_enrols_and_connects_through_the_balancer_by_a_name_only_in_public_names(lb: Lb) -> None:
    cluster, node = lb.cluster, lb.cluster.nodes[0]
    # serve's hint names the balancer's addresses, not the node's own (relay_host:enrol_port)
    assert f"agent enrolment: {cluster.lb_enrol}," in node.tail() or f"agent enrolment: {cluster.lb_enrol}," in \
        node.log.read_text()
    assert f'cloud_grpc = "{cluster.lb_channel}"' in node.log.read_text()
    async with lb.db.transaction() as s:
        token = await channel_store.create_enrolment_token(s, "site-lb", ttl=timedelta(minutes=5), created_by="test")
    data = lb.base / "agent"
    ca = (node.data / "agent-ca" / "agent-ca.crt").read_bytes()
    identity = await enroll(cluster.lb_enrol, token, data, ca_cert_pem=ca)  # TLS: the SAN 127.0.0.7
    config = write_config(lb.base / "agent.toml", {"cloud_grpc": cluster.lb_channel, "data_dir": str(data),
                                                   "targets": ["127.0.0.254/32"], "snmp_port": 9,
                                                   "stop_deadline_seconds": 5.0})
    proc = await start_agent(config, lb.base / "agent.log")
    try:
        async def streaming() -> bool:
            assert proc.returncode is None, (lb.base / "agent.log").read_text()[-2000:]
            async with lb.db.session() as s:
                return await nodes.stream_node(s, identity.agent_id) == node.node_id
        await until("agent connected through HAProxy at 127.0.0.7", streaming, 60)
    finally:
        if proc.returncode is None:
            await stop(proc)


@pytest.mark.parametrize("host", ["s-0123456789abcdef.dwa.localhost", "foo.dwa.localhost"])
async def test_a_host_without_a_node_label_reaches_any_node_not_haproxys_503(lb: Lb, host: str) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        got = await client.get(f"http://{LB}:{lb.cluster.lb.proxy}/", headers={"Host": host})
    assert "No server is available" not in got.text, got.text
    assert got.status_code != 503 and got.headers.get("server", "").lower() != "haproxy", got.text
    assert "session" in got.text.lower()  # the node's own page about the host


async def _failed_sign_in(lb: Lb, *, source: str, forwarded_for: str, email: str) -> str | None:
    transport = httpx.AsyncHTTPTransport(local_address=source)
    portal = lb.cluster.portal_of(lb.cluster.nodes[0])
    async with httpx.AsyncClient(base_url=portal, transport=transport, timeout=10) as client:
        page = await client.get("/login")
        got = await client.post("/login", data={"email": email, "password": "wrong", "csrf_token": csrf_of(page.text)},
                                headers={"X-Forwarded-For": forwarded_for})
        assert got.status_code == 401, got.text
    found: list[str | None] = []

    async def recorded() -> bool:  # the node's audit writer appends in the background
        found.extend(r.source_ip for r in await search(lb.db, AuditFilter(actor=email, types=(event_types.AUTH_LOGIN,))))
        return bool(found)
    await until(f"the {event_types.AUTH_LOGIN} record of {email}", recorded, 15)
    return found[0]


async def test_forwarded_for_is_believed_from_a_trusted_proxy_only(lb: Lb) -> None:
    via_balancer = await _failed_sign_in(lb, source=TRUSTED, forwarded_for="203.0.113.9", email="a@lb.example")
    assert via_balancer == "203.0.113.9"  # the technician's address, through the trusted balancer
    spoofed = await _failed_sign_in(lb, source="127.0.0.1", forwarded_for="203.0.113.10", email="b@lb.example")
    assert spoofed == "127.0.0.1"  # loopback is not in this node's trusted_proxies: the header is ignored


def _forget(lb: Lb, node_id: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PRINTGATE, "nodes", "forget", node_id, "--database-url", lb.cluster.url],
                          capture_output=True, text=True, timeout=60)


async def test_nodes_forget_refuses_a_live_node_and_forgets_a_stopped_one(lb: Lb) -> None:
    live = _forget(lb, "node-1")
    assert live.returncode == 1 and "is live" in live.stderr and "stop it first" in live.stderr, live.stderr
    now = datetime.now(UTC)
    async with lb.db.transaction() as s:
        await nodes.register(s, "gone-node", host="127.0.0.99", pid=1, incarnation="x", now=now,
                             addresses=nodes.NodeAddresses("127.0.0.99:1", "127.0.0.99:2", "127.0.0.99:3"),
                             lease=timedelta(seconds=5))
    async with lb.db.transaction() as s:
        assert await nodes.set_state(s, "gone-node", nodes.STOPPED, incarnation="x", now=now)
    done = _forget(lb, "gone-node")
    assert done.returncode == 0 and "forgotten: gone-node" in done.stdout, done.stderr
    async with lb.db.session() as s:
        assert await nodes.get_node(s, "gone-node") is None and await nodes.get_node(s, "node-1") is not None
    again = _forget(lb, "gone-node")
    assert again.returncode == 1 and "no node 'gone-node'" in again.stderr


def _closed_at_once(address: tuple[str, int]) -> bool:
    """HAProxy closes a TCP frontend's connection at once when its backend has no server up; with a
    server up it connects it (a paused node's kernel still accepts) and the connection stays open."""
    with socket.create_connection(address, timeout=5) as conn:
        conn.settimeout(1.5)
        try:
            return conn.recv(1) == b""
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True


async def test_a_paused_node_leaves_the_channel_and_enrolment_backends(lb: Lb) -> None:
    """Last in the module: the node is paused, then resumed."""
    node, ports = lb.cluster.nodes[0], lb.cluster.lb
    assert node.proc is not None
    assert not await asyncio.to_thread(_closed_at_once, (LB, ports.enrol))  # up: connected through
    os.killpg(node.proc.pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 20  # checks every 2 s, 2 s check timeout, 2 failures: ~6-8 s
        waiting = {"enrolment": ports.enrol, "channel": ports.channel}
        while waiting and time.monotonic() < deadline:
            for name, port in list(waiting.items()):
                if await asyncio.to_thread(_closed_at_once, (LB, port)):
                    del waiting[name]
        assert not waiting, f"the paused node stayed in the {', '.join(waiting)} backend(s) for 20 s"
        log = (lb.base / "haproxy.log").read_text()
        assert re.search(r"printgate_channel/\S+ is DOWN", log), log[-2000:]
    finally:
        os.killpg(node.proc.pid, signal.SIGCONT)
