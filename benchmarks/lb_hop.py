"""Benchmark: the load balancer's hop in front of a node's DWA proxy (issue 18, docs/scale-out.md
"Capacity model").

Same nginx origin (the "device"), same printgate proxy with host routing on (a session host
``s-<session>-<node label>.dwa.localhost``), same wrk, same run:

- ``direct``: wrk → the node's proxy;
- ``through_haproxy``: wrk → HAProxy (the shipped deploy/haproxy/haproxy.cfg with the backends and map
  ``printgate nodes haproxy`` renders for this node) → the node's proxy, routed by the label;
- reference: wrk → nginx directly and → HAProxy → nginx (what the hop costs without printgate).

Reported: requests/s and p50/p99, the ratio through/direct, and HAProxy's CPU per request
(/proc utime+stime of the HAProxy process over the run): how many node proxy cores one HAProxy core
fronts. Writes benchmarks/results/lb_hop.json.

    .venv/bin/python benchmarks/lb_hop.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audit.log import AuditLog  # noqa: E402
from benchmarks.proxy import DEVICE_IP, Sessions, stage, tune_for_serving, wait_port, wrk  # noqa: E402
from gateway.proxy.routes import RouteTable  # noqa: E402
from gateway.proxy.server import DwaProxy  # noqa: E402
from gateway.session_hosts import node_label  # noqa: E402
from lab.ews import EwsServer  # noqa: E402
from lab.ports import free_tcp_port  # noqa: E402
from printgate.cli.nodes import LbNode, render  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "lb_hop.json"
HAPROXY_CFG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def start_haproxy(d: Path, proxy_port: int, nginx_port: int) -> tuple[subprocess.Popen[bytes], int, int]:
    """HAProxy with the shipped config: the node's proxy behind the proxy frontend, and (reference)
    nginx behind a plain listener. The proxy frontend's port and the reference listener's port."""
    label = node_label("bench-node")
    node = LbNode("bench-node", label, "127.0.0.1:9", f"127.0.0.1:{proxy_port}", "127.0.0.1:9",
                  "127.0.0.1:9", "127.0.0.1:9")
    cfg, mapping = render([node], check_inter="60s")
    lb_proxy, lb_ref = free_tcp_port(), free_tcp_port()
    (d / "nodes.cfg").write_text(cfg + f"\nlisten bench_reference_nginx\n    mode http\n    bind 127.0.0.1:{lb_ref}\n"
                                 f"    server nginx {DEVICE_IP}:{nginx_port}\n")
    (d / "nodes.map").write_text(mapping)
    env = {**os.environ, "PRINTGATE_LB_ADDR": "127.0.0.1", "PRINTGATE_LB_PORTAL_PORT": str(free_tcp_port()),
           "PRINTGATE_LB_PROXY_PORT": str(lb_proxy), "PRINTGATE_LB_CHANNEL_PORT": str(free_tcp_port()),
           "PRINTGATE_LB_ENROL_PORT": str(free_tcp_port()), "PRINTGATE_HAPROXY_DIR": str(d)}
    proc = subprocess.Popen(["haproxy", "-db", "-f", str(HAPROXY_CFG), "-f", str(d / "nodes.cfg")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, lb_proxy, lb_ref


async def main(seconds: int) -> dict[str, object]:
    if shutil.which("haproxy") is None or shutil.which("wrk") is None or shutil.which("nginx") is None:
        raise SystemExit("lb_hop: needs haproxy, wrk and nginx (scripts/system-deps.sh)")
    tmp, nginx, nginx_port, db = await stage("printgate-bench-lb-")
    routes = RouteTable()

    async def on_end(_sid: str) -> None:
        return None

    proxy = DwaProxy("127.0.0.1", 0, dwa_domain="dwa.localhost", routes=routes, audit=AuditLog(db, None),
                     on_end_request=on_end, node_label=node_label("bench-node"))
    ews = EwsServer(DEVICE_IP, 0, device_name="jetdirect_m130nw", serial="BENCH1")
    haproxy: subprocess.Popen[bytes] | None = None
    try:
        await proxy.start()
        tune_for_serving()
        await ews.start()
        await wait_port(nginx_port, DEVICE_IP)
        sessions = Sessions(proxy, routes, nginx_port, f"http://{DEVICE_IP}:{nginx_port}")
        host, cookie = await sessions.open("00ff00ff00ff00ff")
        haproxy, lb_proxy, lb_ref = start_haproxy(tmp, proxy.port, nginx_port)
        await wait_port(lb_proxy)
        await wait_port(lb_ref)
        headers = {"Host": host, "Cookie": cookie}
        cases: dict[str, dict[str, float]] = {}
        for conns in (20, 1):
            cases[f"direct_c{conns}"] = await wrk(f"http://127.0.0.1:{proxy.port}/small.html", conns=conns,
                                                  seconds=seconds, headers=headers)
            before = cpu_seconds(haproxy.pid)
            through = await wrk(f"http://127.0.0.1:{lb_proxy}/small.html", conns=conns, seconds=seconds,
                                headers=headers)
            spent = cpu_seconds(haproxy.pid) - before
            through["haproxy_cpu_us_per_req"] = round(spent / max(1.0, through["rps"] * seconds) * 1e6, 1)
            cases[f"through_haproxy_c{conns}"] = through
            cases[f"reference_nginx_direct_c{conns}"] = await wrk(
                f"http://{DEVICE_IP}:{nginx_port}/small.html", conns=conns, seconds=seconds)
            cases[f"reference_nginx_through_haproxy_c{conns}"] = await wrk(
                f"http://127.0.0.1:{lb_ref}/small.html", conns=conns, seconds=seconds)
        failures = sum(int(c["non_2xx"] + c["socket_errors"]) for k, c in cases.items() if not k.startswith("ref"))
        results: dict[str, object] = {
            "benchmark": "lb_hop",
            "machine_note": "2 cores shared with other engineers' test runs; loopback; numbers are noisy",
            "wrk": {"threads": 1, "seconds": seconds, "page": "small.html"},
            "cases": cases,
            "ratio_rps_through_vs_direct": {c: round(cases[f"through_haproxy_c{c}"]["rps"]
                                                     / cases[f"direct_c{c}"]["rps"], 3) for c in (20, 1)},
            "ratio_p50_through_vs_direct": {c: round(cases[f"through_haproxy_c{c}"]["p50_ms"]
                                                     / max(0.001, cases[f"direct_c{c}"]["p50_ms"]), 3) for c in (20, 1)},
            "printgate_failures": failures,
        }
    finally:
        if haproxy is not None:
            haproxy.send_signal(signal.SIGTERM)
            haproxy.wait(10)
        await ews.aclose()
        await proxy.aclose()
        await db.aclose()
        nginx.terminate()
        nginx.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    out = asyncio.run(main(args.seconds))
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    ratio = out["ratio_rps_through_vs_direct"]
    print(f"through HAProxy vs direct (req/s): c20 {ratio[20]}x, c1 {ratio[1]}x")  # type: ignore[index]
