"""Benchmark: pages through the printgate relay + agent tunnel vs OpenSSH ``ssh -R``.

Same nginx, same wrk, same run. The relay runs in this process, the agent in a
child process (like sshd and ssh are separate processes). Also measures tunnel
set-up time (credential issued -> forward ready) p50/p95.

    .venv/bin/python benchmarks/tunnel.py [--seconds 4]

Writes benchmarks/results/tunnel.json. The machine has 2 cores shared with
whatever else runs: numbers are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.firewall import InProcessFirewall  # noqa: E402
from gateway.relay import Relay  # noqa: E402
from lab.ports import free_tcp_port  # noqa: E402
from lab.processes import stop_processes  # noqa: E402
from printgate.domain import AuditEventIn, DwaTarget  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "tunnel.json"
USE_UVLOOP = "--asyncio" not in sys.argv


class NullAudit:
    async def append(self, event: AuditEventIn) -> None:
        return None


# ---------------------------------------------------------------- reference servers
def start_nginx(d: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_tcp_port()
    www = d / "www"
    www.mkdir()
    (www / "small.html").write_text("<html><body>printer status: ready</body></html>\n")
    (www / "big.bin").write_bytes(os.urandom(100 * 1024))
    conf = d / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  default_type application/octet-stream;
  client_body_temp_path {d}/tmp;
  server {{ listen 127.0.0.1:{port}; root {www}; keepalive_requests 100000; }}
}}
""")
    proc = subprocess.Popen(["nginx", "-p", str(d), "-c", str(conf), "-g", "daemon off;"])
    wait_port(port)
    return proc, port


def start_sshd(d: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    Path("/run/sshd").mkdir(exist_ok=True)
    port = free_tcp_port()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "user")], check=True)
    shutil.copy(d / "user.pub", d / "authorized_keys")
    conf = d / "sshd_config"
    conf.write_text(f"""
Port {port}
ListenAddress 127.0.0.1
HostKey {d}/host
PidFile {d}/sshd.pid
AuthorizedKeysFile {d}/authorized_keys
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
AllowTcpForwarding remote
GatewayPorts no
""")
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(conf)], stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc, port, d / "user"


def wait_port(port: int, timeout: float = 10.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


# ---------------------------------------------------------------- wrk
def wrk(url: str, *, connections: int, seconds: int) -> dict[str, float]:
    threads = min(2, connections)
    done = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True, text=True,
    )
    out = done.stdout
    if done.returncode != 0 or "Requests/sec" not in out:
        raise RuntimeError(f"wrk {url} -c{connections} failed: {done.stdout} {done.stderr}")
    if "Non-2xx or 3xx responses" in out or re.search(r"Socket errors: connect [1-9]", out):
        raise RuntimeError(f"wrk {url} -c{connections} got errors, the figures would be meaningless: {out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _latency(re.search(r"\s50%\s+([\d.]+)(us|ms|s)", out))
    p99 = _latency(re.search(r"\s99%\s+([\d.]+)(us|ms|s)", out))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "req_per_s": rps, "p50_ms": p50, "p99_ms": p99,
        "non_2xx": float(non_2xx.group(1)) if non_2xx else 0.0,
        "socket_errors": float(sum(int(g) for g in sock.groups())) if sock else 0.0,
    }


def _latency(m: re.Match[str] | None) -> float:
    if m is None:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def process_tree_cpu_s(roots: list[int]) -> float:
    """User+system CPU seconds of ``roots`` and all their live descendants (sshd forks per connection)."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        ticks[pid] = int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])  # + reaped children
    total = 0
    for pid, t in ticks.items():
        p, hops = pid, 0
        while p not in roots and p in parents and hops < 32:
            p, hops = parents[p], hops + 1
        if p in roots:
            total += t
    return total / os.sysconf("SC_CLK_TCK")


def run_cases_with_cpu(base: str, seconds: int, roots: list[int]) -> dict[str, dict[str, float]]:
    """Like ``run_cases``, plus the tunnel's CPU microseconds per request (steadier than req/s here)."""
    out = {}
    for name, path, c in CASES:
        before = process_tree_cpu_s(roots)
        r = wrk(base + path, connections=c, seconds=seconds)
        used = process_tree_cpu_s(roots) - before
        r["tunnel_cpu_us_per_req"] = round(used / max(1.0, r["req_per_s"] * seconds) * 1e6, 1)
        out[f"{name}_c{c}"] = r
    return out


CASES = [("small", "/small.html", 1), ("small", "/small.html", 20), ("100k", "/big.bin", 1), ("100k", "/big.bin", 20)]


def run_cases(base: str, seconds: int) -> dict[str, dict[str, float]]:
    return {f"{name}_c{c}": wrk(base + path, connections=c, seconds=seconds) for name, path, c in CASES}


# ---------------------------------------------------------------- agent child process
AGENT_CHILD = """
import asyncio, json, sys
sys.path.insert(0, {root!r})
from agent.tunnel import open_tunnel
from printgate.domain import DwaTarget
async def main():
    cfg = json.loads(sys.stdin.readline())
    t = await open_tunnel("127.0.0.1", cfg["port"], host_key_fingerprint=cfg["fp"],
        credential_private_key=cfg["key"], credential_certificate=cfg["cert"],
        session_id=cfg["sid"], target=DwaTarget("127.0.0.1", cfg["target"]), verify=None)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await t.aclose()
if {uvloop!r}:
    import uvloop
    uvloop.run(main())
else:
    asyncio.run(main())
"""


async def printgate_tunnel(relay: Relay, nginx_port: int) -> tuple[asyncio.subprocess.Process, str]:
    sid = "bench" + os.urandom(4).hex()
    cred = relay.issue_credential(sid, valid_seconds=3600, agent_id="bench")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", AGENT_CHILD.format(root=str(ROOT), uvloop=USE_UVLOOP),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdin is not None
    cfg = {"port": relay.port, "fp": relay.host_key_fingerprint, "key": cred.private_key,
           "cert": cred.certificate, "sid": sid, "target": nginx_port}
    proc.stdin.write((json.dumps(cfg) + "\n").encode())
    await proc.stdin.drain()
    host, port = await relay.wait_forward(sid, timeout=20)
    return proc, f"http://{host}:{port}"


async def setup_times(relay: Relay, nginx_port: int, n: int) -> list[float]:
    from agent.tunnel import open_tunnel

    times = []
    for i in range(n):
        sid = f"setup{i}{os.urandom(3).hex()}"
        t0 = time.perf_counter()
        cred = relay.issue_credential(sid, valid_seconds=600, agent_id="bench")
        tunnel = await open_tunnel(
            "127.0.0.1", relay.port, host_key_fingerprint=relay.host_key_fingerprint,
            credential_private_key=cred.private_key, credential_certificate=cred.certificate,
            session_id=sid, target=DwaTarget("127.0.0.1", nginx_port), verify=None,
        )
        await relay.wait_forward(sid, timeout=10)
        times.append((time.perf_counter() - t0) * 1000)
        await tunnel.aclose()
        await relay.end_session(sid, "bench")
    return times


def ssh_setup_times(sshd_port: int, key: Path, nginx_port: int, n: int) -> list[float]:
    times = []
    for _ in range(n):
        rport = free_tcp_port()
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            ["ssh", "-F", "/dev/null", "-i", str(key), "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes",
             "-o", "ExitOnForwardFailure=yes", "-N", "-R", f"{rport}:127.0.0.1:{nginx_port}",
             "-p", str(sshd_port), "root@127.0.0.1"],
            stdin=subprocess.DEVNULL,
        )
        wait_port(rport)
        times.append((time.perf_counter() - t0) * 1000)
        proc.terminate()
        proc.wait()
    return times


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--setups", type=int, default=20)
    parser.add_argument("--asyncio", action="store_true", help="plain asyncio loop instead of uvloop")
    args = parser.parse_args()
    for tool in ("nginx", "wrk", "ssh", "/usr/sbin/sshd"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: run scripts/system-deps.sh")
    d = Path(tempfile.mkdtemp(prefix="printgate-bench-tunnel-"))
    d.chmod(0o755)  # nginx workers run unprivileged: a 0700 temp dir made every answer a 403
    procs: list[subprocess.Popen[bytes]] = []
    try:
        (d / "nginx").mkdir()
        nginx, nginx_port = start_nginx(d / "nginx")
        procs.append(nginx)
        sshd, sshd_port, user_key = start_sshd(d)
        procs.append(sshd)
        rport = free_tcp_port()
        ssh = subprocess.Popen(
            ["ssh", "-F", "/dev/null", "-i", str(user_key), "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes",
             "-o", "ExitOnForwardFailure=yes", "-N", "-R", f"{rport}:127.0.0.1:{nginx_port}",
             "-p", str(sshd_port), "root@127.0.0.1"],
            stdin=subprocess.DEVNULL,
        )
        procs.append(ssh)
        wait_port(rport)

        fw = InProcessFirewall()
        relay = Relay("127.0.0.1", 0, host_key_path=d / "relay_host", ca_key_path=d / "relay_ca",
                      audit=NullAudit(), firewall=fw)
        await relay.start()
        await fw.allow("bench-agent", "127.0.0.1", relay.port, 3600)
        agent, pg_base = await printgate_tunnel(relay, nginx_port)

        loop = asyncio.get_running_loop()
        results: dict[str, object] = {
            "seconds_per_case": args.seconds, "cores": os.cpu_count(),
            "event_loop": "uvloop" if USE_UVLOOP else "asyncio",
            "note": "2 shared cores, other test jobs running at the same time: noisy. "
                    "tunnel_cpu_us_per_req = CPU of relay+agent (printgate) or sshd+ssh (OpenSSH) per "
                    "request, steadier than req/s under contention. OpenSSH -N leaves Nagle on its "
                    "transport, so its 100 KB pages at c1 stall on delayed ACKs (~40 ms).",
        }
        results["direct_nginx"] = await loop.run_in_executor(
            None, run_cases, f"http://127.0.0.1:{nginx_port}", args.seconds)
        results["openssh_R"] = await loop.run_in_executor(
            None, run_cases_with_cpu, f"http://127.0.0.1:{rport}", args.seconds, [sshd.pid, ssh.pid])
        results["printgate"] = await loop.run_in_executor(
            None, run_cases_with_cpu, pg_base, args.seconds, [os.getpid(), agent.pid])

        ratios = {}
        for case in results["printgate"]:  # type: ignore[attr-defined]
            pg, ref = results["printgate"][case], results["openssh_R"][case]  # type: ignore[index]
            ratios[case] = {
                "throughput_vs_openssh": round(pg["req_per_s"] / ref["req_per_s"], 3),
                "p99_vs_openssh": round(pg["p99_ms"] / ref["p99_ms"], 3) if ref["p99_ms"] else None,
                "cpu_per_req_vs_openssh": round(pg["tunnel_cpu_us_per_req"] / ref["tunnel_cpu_us_per_req"], 2)
                if ref["tunnel_cpu_us_per_req"] else None,
            }
        results["ratios"] = ratios

        assert agent.stdin is not None
        agent.stdin.close()
        await agent.wait()
        pg_setup = await setup_times(relay, nginx_port, args.setups)
        ssh_setup = await loop.run_in_executor(None, ssh_setup_times, sshd_port, user_key, nginx_port,
                                               max(5, args.setups // 2))
        results["setup_ms"] = {
            "printgate_p50": round(statistics.median(pg_setup), 1),
            "printgate_p95": round(pct(pg_setup, 0.95), 1),
            "openssh_p50": round(statistics.median(ssh_setup), 1),
            "openssh_p95": round(pct(ssh_setup, 0.95), 1),
            "target_p50": 150,
        }
        await relay.aclose()
    finally:
        stop_processes(*procs, timeout=5)
        shutil.rmtree(d, ignore_errors=True)

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'case':<12}{'printgate req/s':>17}{'openssh req/s':>15}{'ratio':>8}{'pg p99':>9}{'ssh p99':>9}"
          f"{'pg cpu us/req':>15}{'ssh cpu us/req':>16}")
    for case, r in ratios.items():
        pg, ref = results["printgate"][case], results["openssh_R"][case]  # type: ignore[index]
        print(f"{case:<12}{pg['req_per_s']:>17.0f}{ref['req_per_s']:>15.0f}{r['throughput_vs_openssh']:>8.2f}"
              f"{pg['p99_ms']:>9.2f}{ref['p99_ms']:>9.2f}"
              f"{pg['tunnel_cpu_us_per_req']:>15.0f}{ref['tunnel_cpu_us_per_req']:>16.0f}")
    print("setup ms:", results["setup_ms"])
    print("(2 shared cores, other jobs running: numbers are noisy)")


if __name__ == "__main__":
    if USE_UVLOOP:
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())
