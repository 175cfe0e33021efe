"""Two real ``printgate serve`` processes (own data dirs, own ports) on one PostgreSQL database
(issue 18): starting node 2 leaves node 1's live session alone and ends only node 2's own leftover;
``kill -9`` of node 1 → once its lease ran out node 2 takes it over, ends its session and audits
both with the node ids; SIGTERM stops node 2 cleanly; ``printgate audit verify`` passes over the
records and checkpoints both nodes signed (with the keys shared as docs/scale-out.md says)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from printgate.domain import (
    AgentId,
    DealerId,
    DeviceId,
    DwaSession,
    DwaState,
    DwaTarget,
    Role,
    SessionId,
    User,
    UserId,
    event_types,
)
from printgate.store import nodes, sessions, tenants
from printgate.store.db import Database
from printgate.testing.audit import stored_records
from printgate.testing.database import create_pg_database, drop_pg_database, migrated
from printgate.testing.nodes import write_node_config
from printgate.testing.tenancy import Tenancy

pytestmark = pytest.mark.postgres

PRINTGATE = str(Path(sys.executable).with_name("printgate"))
LEASE_S, RENEW_S = 3.0, 0.5
# the keys every node must share until key sets land (docs/scale-out.md)
SHARED = ("audit-signing.key", "audit-public.pem", "audit-keys.json", "agent-ca", "relay_ssh_ca", "relay_host_key",
          "dwa-ca", "vault-master.key")


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _config(base: Path, node_id: str, url: str) -> Path:
    return write_node_config(base, node_id, url, _free_ports(5), log_level="info", gateway_extra=(
        f"node_lease_seconds = {LEASE_S}\nnode_renew_seconds = {RENEW_S}\naudit_checkpoint_seconds = 1"))


def _serve(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([PRINTGATE, "serve", "--config", str(config)], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PRINTGATE_LOG_JSON": "false"}, start_new_session=True)


@pytest.fixture
def pg_url() -> Iterator[str]:
    try:
        url = create_pg_database()
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 unavailable: {exc}")
    yield url
    drop_pg_database(url)


async def _wait(what: str, check: object, proc: subprocess.Popen[bytes] | None, log: Path | None,
                timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():  # type: ignore[operator]
            return
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what}: the process ended ({proc.returncode}): {log.read_text()[-3000:] if log else ''}")
        await asyncio.sleep(0.1)
    pytest.fail(f"{what}: not within {timeout} s; {log.read_text()[-3000:] if log else ''}")


async def _state(db: Database, node_id: str) -> str | None:
    async with db.session() as s:
        node = await nodes.get_node(s, node_id)
    return node.state if node is not None else None


async def _session(db: Database, sid: str) -> DwaSession:
    async with db.session() as s:
        found = await sessions.load_session(s, sid)
    assert found is not None
    return found


async def _live_session(db: Database, sid: str, owner: str) -> None:
    now = datetime.now(UTC)
    session = DwaSession(id=SessionId(sid), user_id=UserId("tech"), device_id=DeviceId("dev1"),
                         agent_id=AgentId("a1"), target=DwaTarget("127.0.20.1", 80, "http"),
                         created_at=now, expires_at=now + timedelta(minutes=20))
    for state in (DwaState.AUTHORISED, DwaState.TUNNEL_OPEN, DwaState.ACTIVE):
        session = session.transition(state, at=now, reason=str(state))
    async with db.transaction() as s:
        await sessions.save_session(s, session, node_id=owner)


async def test_nodes_reap_only_their_own_and_expired_nodes_sessions(tmp_path: Path, pg_url: str) -> None:
    async with migrated(pg_url) as db:
        await Tenancy().chain(dealer="d1", customer="c1", site="s1", agent="a1").device(
            "dev1", "s1", "a1", "127.0.20.1").save(db)
        async with db.transaction() as s:
            await tenants.add_user(s, User(UserId("tech"), "tech@d1.example", "Tech", frozenset({Role.TECHNICIAN}),
                                           dealer_id=DealerId("d1")))
        one_cfg, two_cfg = _config(tmp_path, "node-1", pg_url), _config(tmp_path, "node-2", pg_url)
        one_log, two_log = tmp_path / "node-1.log", tmp_path / "node-2.log"
        one = _serve(one_cfg, one_log)
        two: subprocess.Popen[bytes] | None = None
        try:
            async def one_active() -> bool:
                return await _state(db, "node-1") == nodes.ACTIVE
            await _wait("node 1 registered", one_active, one, one_log)
            await _live_session(db, "s-of-node-1", owner="node-1")  # node 1 serves it
            await _live_session(db, "s-left-by-node-2", owner="node-2")  # node 2's previous process left it

            # the keys nodes must share (docs/scale-out.md): node 2's data dir gets node 1's
            for name in SHARED:
                src = tmp_path / "node-1" / name
                if src.is_dir():
                    shutil.copytree(src, tmp_path / "node-2" / name)
                elif src.exists():
                    shutil.copy2(src, tmp_path / "node-2" / name)
            two = _serve(two_cfg, two_log)

            async def two_active() -> bool:
                return await _state(db, "node-2") == nodes.ACTIVE
            await _wait("node 2 registered", two_active, two, two_log)

            async def own_leftover_reaped() -> bool:
                return (await _session(db, "s-left-by-node-2")).state is DwaState.CLOSED
            await _wait("node 2 ends its own leftover", own_leftover_reaped, two, two_log)
            await asyncio.sleep(LEASE_S + RENEW_S)  # longer than a lease: node 1 renews, node 2 leaves it
            assert (await _session(db, "s-of-node-1")).state is DwaState.ACTIVE  # node 1's: left alone
            assert await _state(db, "node-1") == nodes.ACTIVE

            started = time.monotonic()
            os.killpg(one.pid, signal.SIGKILL)
            one.wait(10)

            async def taken_over() -> bool:
                return (await _session(db, "s-of-node-1")).state is DwaState.CLOSED
            await _wait("node 2 takes node 1 over", taken_over, two, two_log, timeout=LEASE_S + 20)
            took = time.monotonic() - started
            print(f"node 1 taken over {took:.1f} s after kill -9 (lease {LEASE_S} s, renewal {RENEW_S} s)")
            assert took >= LEASE_S - 1.5, took  # not before node 1's lease could have run out
            ended = await _session(db, "s-of-node-1")
            assert "gateway node lost" in ended.history[-1].reason
            async with db.session() as s:
                node1 = await nodes.get_node(s, "node-1")

            async def audited() -> bool:  # the records follow the transaction that ended the session
                return any(r.type == event_types.DWA_SESSION_CLOSED and r.session_id == "s-of-node-1"
                           for r in await stored_records(db))
            await _wait("the taking-over audited", audited, two, two_log, timeout=10)
            records = await stored_records(db)
            assert node1 is not None and node1.state == nodes.EXPIRED and node1.taken_over_by == "node-2"
            takeovers = [r for r in records if r.type == event_types.GATEWAY_NODE_TAKEN_OVER]
            assert len(takeovers) == 1
            assert takeovers[0].details["node"] == "node-1" and takeovers[0].details["by_node"] == "node-2"
            assert takeovers[0].details["sessions_ended"] == 1
            closes = {r.session_id: r.details for r in records if r.type == event_types.DWA_SESSION_CLOSED}
            assert closes["s-of-node-1"]["owner_node"] == "node-1"
            assert closes["s-of-node-1"]["ended_by_node"] == "node-2"
            assert closes["s-left-by-node-2"]["owner_node"] == "node-2"
            assert "gateway restarted" in closes["s-left-by-node-2"]["reason"]

            two.send_signal(signal.SIGTERM)
            assert two.wait(30) == 0, two_log.read_text()[-3000:]
            assert await _state(db, "node-2") == nodes.STOPPED
        finally:
            for proc in (one, two):
                if proc is not None and proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)

    verify = subprocess.run(
        [PRINTGATE, "audit", "verify", "--public-key", str(tmp_path / "node-1" / "audit-public.pem"),
         "--database-url", pg_url], capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0, verify.stdout + verify.stderr
