"""Command latency portal -> agent over the gRPC stream and over MQTT, many agents.

Parent process: gateway (AgentChannelServer + AgentHub + MqttBridge) and a
Mosquitto broker with TLS client certs. Child process: N simulated agents
(GrpcChannel each with its own mTLS connection) and M MQTT agents (paho).
The parent signs and sends Ping commands whose nonce is the send time
(CLOCK_REALTIME ns); the child records receipt time after the CommandGuard
accepted the command (signature/expiry/replay checks included).
Reference in the same run: raw ``mosquitto_pub -l`` -> ``mosquitto_sub`` round
trip through the same broker (no signing, no protobuf, no Python).

    .venv/bin/python benchmarks/command_latency.py [--grpc-agents 1000] [--mqtt-agents 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.channel.command_guard import CommandGuard  # noqa: E402
from agent.channel.enroll import EnrolledIdentity, key_pem, make_csr, new_key  # noqa: E402
from audit.log import AuditLog  # noqa: E402
from gateway.channel.ca import AgentCA  # noqa: E402
from gateway.channel.grpc_server import AgentChannelServer  # noqa: E402
from gateway.channel.handlers import ChannelHandlers  # noqa: E402
from gateway.channel.hub import AgentHub  # noqa: E402
from gateway.channel.mqtt_bridge import MqttBridge  # noqa: E402
from lab.ports import free_tcp_port  # noqa: E402
from printgate.domain import Customer, CustomerId, Dealer, DealerId, Site, SiteId  # noqa: E402
from printgate.store import channel as store  # noqa: E402
from printgate.store import tenants  # noqa: E402
from printgate.store.db import Database, migrate  # noqa: E402
from printgate.wire import agent_pb2 as pb  # noqa: E402
from printgate.wire.topics import GATEWAY_USER  # noqa: E402

ACL = (ROOT / "deploy" / "mosquitto" / "acl").read_text()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50_ms": round(pct(values, 50), 3), "p99_ms": round(pct(values, 99), 3),
            "mean_ms": round(statistics.fmean(values), 3) if values else float("nan")}


# ---------------------------------------------------------------- child: agents
async def child(spec_path: Path) -> None:
    from agent.channel.grpc_client import GrpcChannel
    from agent.channel.mqtt_client import MqttChannel

    spec = json.loads(spec_path.read_text())
    lat: dict[str, list[float]] = {"grpc": [], "mqtt": []}
    channels: list[object] = []

    async def consume(ch: GrpcChannel | MqttChannel, kind: str) -> None:
        async for cmd in ch.commands():
            lat[kind].append((time.time_ns() - int(cmd.command.ping.nonce)) / 1e6)

    tasks = []
    for d in spec["grpc"]:
        ident = EnrolledIdentity.load(Path(d))
        g = GrpcChannel(spec["target"], ident, guard=CommandGuard(ident.agent_id, ident.command_verify_key))
        await g.connect()
        channels.append(g)
        tasks.append(asyncio.create_task(consume(g, "grpc")))
    for d in spec["mqtt"]:
        ident = EnrolledIdentity.load(Path(d))
        m = MqttChannel("127.0.0.1", spec["broker_port"], ident,
                        guard=CommandGuard(ident.agent_id, ident.command_verify_key), keepalive=60)
        await m.connect()
        channels.append(m)
        tasks.append(asyncio.create_task(consume(m, "mqtt")))
    print(json.dumps({"ready": True, "rss_mb": rss_mb(os.getpid())}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # parent says stop
    print(json.dumps({"latencies": lat, "rss_mb": rss_mb(os.getpid())}), flush=True)
    os._exit(0)  # skip closing thousands of channels politely


# ---------------------------------------------------------------- parent: gateway
def start_broker(ca: AgentCA) -> tuple[subprocess.Popen[bytes], Path, int]:
    import pwd
    d = Path(tempfile.mkdtemp(prefix="printgate-bench-mqtt-"))
    d.chmod(0o755)
    srv = ca.issue_server_certificate(["127.0.0.1"])
    bridge = ca.issue_service_client(GATEWAY_USER)
    for name, data in {"ca.crt": ca.cert_pem, "server.crt": srv.cert_pem, "server.key": srv.key_pem,
                       "bridge.crt": bridge.cert_pem, "bridge.key": bridge.key_pem,
                       "acl": ACL.encode()}.items():
        (d / name).write_bytes(data)
    port = free_tcp_port()
    (d / "m.conf").write_text(
        f"per_listener_settings false\nallow_anonymous false\npersistence false\nlog_type error\n"
        f"max_connections -1\nlistener {port} 127.0.0.1\ncafile {d}/ca.crt\ncertfile {d}/server.crt\n"
        f"keyfile {d}/server.key\nrequire_certificate true\nuse_identity_as_username true\n"
        f"acl_file {d}/acl\nmax_inflight_messages 0\n")
    user = pwd.getpwnam("mosquitto")
    for p in [d, *d.iterdir()]:
        os.chown(p, user.pw_uid, user.pw_gid)
    proc = subprocess.Popen(["mosquitto", "-c", str(d / "m.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return proc, d, port


def reference(d: Path, port: int, count: int) -> list[float]:
    """Raw mosquitto_pub -l -> mosquitto_sub round trip (payload = send time ns)."""
    args = ["-h", "127.0.0.1", "-p", str(port), "--cafile", str(d / "ca.crt"),
            "--cert", str(d / "bridge.crt"), "--key", str(d / "bridge.key")]
    sub = subprocess.Popen(["mosquitto_sub", *args, "-t", "printgate/v1/agents/ref/cmd", "-q", "1",
                            "-i", "ref-sub", "-C", str(count)], stdout=subprocess.PIPE)
    time.sleep(0.5)
    pub = subprocess.Popen(["mosquitto_pub", *args, "-t", "printgate/v1/agents/ref/cmd", "-q", "1",
                            "-i", "ref-pub", "-l"], stdin=subprocess.PIPE)
    lat: list[float] = []
    assert pub.stdin is not None and sub.stdout is not None
    for _ in range(count):
        pub.stdin.write(f"{time.time_ns()}\n".encode())
        pub.stdin.flush()
        line = sub.stdout.readline()
        lat.append((time.time_ns() - int(line)) / 1e6)
    pub.stdin.close()
    pub.wait(5)
    sub.wait(5)
    return lat


async def parent(args: argparse.Namespace) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="printgate-bench-"))
    url = f"sqlite+aiosqlite:///{tmp}/cloud.db"
    await migrate(url)
    db = Database(url)
    async with db.transaction() as s:
        await tenants.add_dealer(s, Dealer(DealerId("d"), "D"))
        await s.flush()
        await tenants.add_customer(s, Customer(CustomerId("c"), DealerId("d"), "C"))
        await s.flush()
        await tenants.add_site(s, Site(SiteId("site"), CustomerId("c"), "S"))
    ca = AgentCA.load_or_create(tmp / "ca")
    hub = AgentHub(ca.command_key)

    async def nothing(*_a: object) -> None:
        return None

    handlers = ChannelHandlers(nothing, nothing, nothing)
    server = AgentChannelServer("127.0.0.1", free_tcp_port(), ca=ca, db=db, audit=AuditLog(db, None),
                                hub=hub, handlers=handlers)
    await server.start()
    broker, bdir, bport = start_broker(ca)
    bridge = MqttBridge("127.0.0.1", bport, ca_path=bdir / "ca.crt", cert_path=bdir / "bridge.crt",
                        key_path=bdir / "bridge.key", hub=hub)
    await bridge.start()

    total = args.grpc_agents + args.mqtt_agents
    t0 = time.monotonic()
    dirs: list[str] = []
    ids: list[str] = []
    async with db.transaction() as s:
        for i in range(total):
            aid = f"agt-bench{i:05d}"
            key = new_key()
            issued = ca.issue_agent_certificate(make_csr(key, aid), agent_id=aid, site_id="site",
                                                ttl=timedelta(hours=2))
            await store.ensure_agent(s, aid, "site", name=aid)
            await store.record_certificate(s, issued.record)
            d = tmp / "agents" / aid
            d.mkdir(parents=True)
            (d / "agent.key").write_bytes(key_pem(key))
            (d / "agent.crt").write_bytes(issued.pem)
            (d / "ca.crt").write_bytes(ca.cert_pem)
            EnrolledIdentity(aid, "site", d, hub.verify_key_raw, "", "", "", 0).save()
            dirs.append(str(d))
            ids.append(aid)
    issue_s = time.monotonic() - t0
    spec = tmp / "spec.json"
    spec.write_text(json.dumps({"target": server.target, "broker_port": bport,
                                "grpc": dirs[: args.grpc_agents], "mqtt": dirs[args.grpc_agents:]}))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--child", str(spec), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, cwd=str(ROOT), limit=64 * 1024 * 1024)
    assert proc.stdout is not None and proc.stdin is not None
    try:
        return await measure(args, proc, hub, ids, issue_s, broker, bdir, bport)
    finally:
        if proc.returncode is None:
            proc.kill()
        await bridge.aclose()
        await server.aclose()
        await db.aclose()
        broker.terminate()
        broker.wait(5)
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(bdir, ignore_errors=True)


async def measure(args: argparse.Namespace, proc: asyncio.subprocess.Process, hub: AgentHub,
                  ids: list[str], issue_s: float, broker: subprocess.Popen[bytes], bdir: Path,
                  bport: int) -> dict[str, object]:
    assert proc.stdout is not None and proc.stdin is not None
    total = args.grpc_agents + args.mqtt_agents
    json.loads(await asyncio.wait_for(proc.stdout.readline(), 300))
    t1 = time.monotonic()
    deadline = t1 + 180
    while len(hub.online_agents()) < total and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    connect_s = time.monotonic() - t1
    online = len(hub.online_agents())
    grpc_ids, mqtt_ids = ids[: args.grpc_agents], ids[args.grpc_agents:]
    rng = random.Random(7)
    for pool, count in ((grpc_ids, args.commands), (mqtt_ids, args.commands if mqtt_ids else 0)):
        for _ in range(count):
            aid = rng.choice(pool)
            if hub.is_online(aid):
                await hub.send(aid, pb.Ping(nonce=str(time.time_ns())), ttl_s=60)
            await asyncio.sleep(1 / args.rate)
    await asyncio.sleep(2.0)
    gateway_rss = rss_mb(os.getpid())
    broker_rss = rss_mb(broker.pid)
    proc.stdin.write(b"stop\n")
    await proc.stdin.drain()
    result = json.loads(await asyncio.wait_for(proc.stdout.readline(), 60))
    await proc.wait()
    ref = await asyncio.to_thread(reference, bdir, bport, args.reference_messages)
    grpc_s, mqtt_s, ref_s = (summary(result["latencies"]["grpc"]), summary(result["latencies"]["mqtt"]),
                             summary(ref))
    return {
        "benchmark": "command_latency",
        "machine": f"{os.cpu_count()} cores, loopback; other helpers' tests running concurrently (noisy)",
        "agents": {"grpc": args.grpc_agents, "mqtt": args.mqtt_agents, "online_reached": online},
        "setup_s": {"issue_certs": round(issue_s, 1), "connect_all": round(connect_s, 1)},
        "send_rate_per_s": args.rate,
        "grpc_stream": grpc_s,
        "mqtt": mqtt_s,
        "reference_mosquitto_pub_sub": ref_s,
        "ratio_p50_vs_reference": {
            "grpc": round(grpc_s["p50_ms"] / ref_s["p50_ms"], 2),
            "mqtt": round(mqtt_s["p50_ms"] / ref_s["p50_ms"], 2) if mqtt_ids else None},
        "rss_mb": {"gateway_process": round(gateway_rss, 1), "broker": round(broker_rss, 1),
                   "agents_process": round(result["rss_mb"], 1)},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child")
    ap.add_argument("--grpc-agents", type=int, default=1000)
    ap.add_argument("--mqtt-agents", type=int, default=200)
    ap.add_argument("--commands", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--reference-messages", type=int, default=500)
    args = ap.parse_args()
    import logging

    import structlog
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
                        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    if args.child:
        asyncio.run(child(Path(args.child)))
        return
    out = asyncio.run(parent(args))
    print(json.dumps(out, indent=2))
    path = ROOT / "benchmarks" / "results" / "command_latency.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
