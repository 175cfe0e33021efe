"""Sweep of 127.0.20.0/24 (lab printers + dead addresses): ours vs net-snmp vs the timeout floor.

Run: .venv/bin/python benchmarks/snmp_sweep.py   (writes benchmarks/results/snmp_sweep.json)

Two kinds of dead address, both measured:
- ``silent``: a UDP socket is bound on every dead address and never answers
  (a powered-off host, a firewall that drops). Nothing can beat one timeout
  round here: this is the floor the target (<= 1.5x) is about.
- ``with_per_object_fallbacks``: as ``silent``, and ~10 % of the lab devices answer one
  object with genErr, so discovery retries per table / per object for them.
- ``closed``: nothing listens, the kernel answers ICMP port-unreachable (a
  host without an SNMP agent). The agent reads those errors (IP_RECVERR) and
  fails such hosts at once; on loopback the kernel rate-limits them, so only
  part arrive and the sweep still waits for the rest.

Reference in the same run: net-snmp ``snmpgetnext`` of sysDescr + the Printer-MIB
root per host, 254 processes in parallel (what a shell sweep would do).
Each variant runs ROUNDS times, alternating; medians are reported. The box has
2 shared cores and other engineers' test suites run at the same time: noisy.
"""

from __future__ import annotations

import asyncio
import json
import resource
import socket
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.discovery import DiscoveryLimits, discover
from lab.catalog import LAB_DEVICES, PRINTERS, by_name
from lab.snmp import SnmpLab, recording_path
from printgate.domain import DiscoveryResult, DiscoveryStatus, SnmpCredential
from printgate.logs import configure_logging

TIMEOUT = 1.0
ROUNDS = 3
SNMPSIM_PROCESSES = 4
NET = "127.0.20"
OUT = Path(__file__).parent / "results" / "snmp_sweep.json"


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


async def netsnmp_sweep(port: int) -> tuple[float, float, set[str]]:
    async def one(ip: str) -> str | None:
        p = await asyncio.create_subprocess_exec(
            "snmpgetnext", "-v2c", "-c", "public", "-On", "-t", str(TIMEOUT), "-r", "0", f"{ip}:{port}",
            "1.3.6.1.2.1.1.1", "1.3.6.1.2.1.43",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await p.communicate()
        lines = out.decode(errors="replace").splitlines()
        return ip if p.returncode == 0 and len(lines) > 1 and lines[1].startswith(".1.3.6.1.2.1.43.") else None

    cpu0 = children_cpu()
    started = time.monotonic()
    found = await asyncio.gather(*(one(f"{NET}.{i}") for i in range(1, 255)))
    return time.monotonic() - started, children_cpu() - cpu0, {f for f in found if f}


async def ours_sweep(port: int) -> tuple[float, float, dict[DiscoveryStatus, set[str]], list[str], float]:
    cpu0 = time.process_time()
    started = time.monotonic()
    lab_ips = {d.ip for d in LAB_DEVICES}
    lab_done: list[float] = []

    def tick(r: DiscoveryResult) -> None:
        if r.ip in lab_ips:
            lab_done.append(time.monotonic() - started)

    results = await discover(
        [f"{NET}.0/24"], port=port, credentials=[SnmpCredential.v2c("public")],
        limits=DiscoveryLimits(max_in_flight=256, packets_per_second=None, timeout=TIMEOUT, retries=0),
        progress=tick,
    )
    wall = time.monotonic() - started
    by: dict[DiscoveryStatus, set[str]] = {s: set() for s in DiscoveryStatus}
    for r in results:
        by[r.status].add(r.ip)
    lab = {d.ip: d for d in LAB_DEVICES}
    wrong = [f"{r.ip} {r.status}: {r.reason[:160]}" for r in results if r.ip in lab and r.status is not (
        DiscoveryStatus.PRINTER if lab[r.ip].printer else DiscoveryStatus.EXCLUDED)]
    return wall, time.process_time() - cpu0, by, wrong, max(lab_done, default=0.0)


# ~10 % of the lab devices answer one object with genErr (snmpsim's error variation), so
# discovery must retry per table / per object for them: a Host-Resources device id inside
# the identity walk (Brother), HP's device-ID object next to the vendor serial (Ricoh)
FALLBACKS = {
    "brother_hl5370dw": ("1.3.6.1.2.1.25.3.2.1.4.1", 6),
    "ricoh_mpc3002": ("1.3.6.1.4.1.11.2.3.9.1.1.7.0", 4),
}


async def with_fallbacks(lab: SnmpLab, work: Path) -> list[str]:
    """Serve the FALLBACKS devices from copies whose object answers genErr; their names."""
    for name, (oid, tag) in FALLBACKS.items():
        lines = [line for line in recording_path(name).read_text(errors="replace").splitlines()
                 if line and not line.startswith(oid + "|")]
        lines.append(f"{oid}|{tag}:error|op=any,status=genError")
        lines.sort(key=lambda line: tuple(int(p) if p.isdigit() else -1 for p in line.split("|", 1)[0].split(".")))
        copy = work / f"{name}-generr.snmprec"
        copy.write_text("\n".join(lines) + "\n")
        await lab.swap(by_name(name).ip, str(copy))
    return list(FALLBACKS)


def black_holes(port: int, stack: ExitStack) -> int:
    """Bind a silent UDP socket on every address the lab does not serve."""
    served = {d.ip for d in LAB_DEVICES}
    n = 0
    for i in range(1, 255):
        ip = f"{NET}.{i}"
        if ip in served:
            continue
        s = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        s.bind((ip, port))
        n += 1
    return n


async def scenario(lab: SnmpLab) -> dict[str, object]:
    truth = {d.ip for d in PRINTERS}
    others = {d.ip for d in LAB_DEVICES if not d.printer}
    ours_w, ours_c, ref_w, ref_c, slowest = [], [], [], [], []
    misclassified: list[str] = []
    worst = {"printers_found": len(truth), "false_positives": 0, "non_printers_excluded": len(others),
             "netsnmp_printers_found": len(truth)}
    for _ in range(ROUNDS):
        w, c, by, wrong, last_lab = await ours_sweep(lab.port)
        slowest.append(last_lab)
        misclassified += wrong
        ours_w.append(w)
        ours_c.append(c)
        printers = by[DiscoveryStatus.PRINTER]
        worst["printers_found"] = min(worst["printers_found"], len(printers & truth))
        worst["false_positives"] = max(worst["false_positives"], len(printers - truth))
        worst["non_printers_excluded"] = min(
            worst["non_printers_excluded"], len(others & by[DiscoveryStatus.EXCLUDED]))
        rw, rc, found = await netsnmp_sweep(lab.port)
        ref_w.append(rw)
        ref_c.append(rc)
        worst["netsnmp_printers_found"] = min(worst["netsnmp_printers_found"], len(found & truth))
    ours, ref = statistics.median(ours_w), statistics.median(ref_w)
    return {
        "ours_wall_s": round(ours, 3), "ours_wall_all_s": [round(x, 3) for x in ours_w],
        "ours_cpu_s": round(statistics.median(ours_c), 3),
        # when the last lab device (printer or not) was classified: the rest of the sweep waits for dead hosts
        "slowest_lab_device_s": [round(x, 3) for x in slowest],
        "netsnmp_wall_s": round(ref, 3), "netsnmp_wall_all_s": [round(x, 3) for x in ref_w],
        "netsnmp_cpu_s": round(statistics.median(ref_c), 3),
        "ratio_vs_floor": round(ours / TIMEOUT, 2), "ratio_vs_netsnmp": round(ours / ref, 2),
        "printers_total": len(truth), **worst, "misclassified_lab_devices": misclassified,
    }


async def main() -> None:
    configure_logging("warning")
    async with SnmpLab(processes=SNMPSIM_PROCESSES) as lab:
        # warm up: first request pays lazy initialisation on both sides
        await discover([d.ip for d in LAB_DEVICES], port=lab.port, credentials=[SnmpCredential.v2c("public")])
        closed = await scenario(lab)
        with ExitStack() as stack:
            holes = black_holes(lab.port, stack)
            silent = await scenario(lab)
            fallback_devices = await with_fallbacks(lab, Path(stack.enter_context(tempfile.TemporaryDirectory())))
            fallbacks = await scenario(lab)
    result = {
        "hosts": 254, "timeout_s": TIMEOUT, "retries": 0, "rounds": ROUNDS,
        "snmpsim_processes": SNMPSIM_PROCESSES,
        "silent_dead_hosts": {"dead_addresses": holes, **silent},
        "closed_port_dead_hosts": closed,
        "with_per_object_fallbacks": {"devices": fallback_devices, "share_of_lab_devices": round(
            len(fallback_devices) / len(LAB_DEVICES), 2), **fallbacks},
        "fallbacks_ratio_vs_floor": fallbacks["ratio_vs_floor"],
        # headline = the honest floor case
        "ratio_vs_floor": silent["ratio_vs_floor"], "ratio_vs_netsnmp": silent["ratio_vs_netsnmp"],
        "printers_found": silent["printers_found"], "false_positives": silent["false_positives"],
        "note": "2 shared cores, other engineers' tests running at the same time: noisy; medians of "
                f"{ROUNDS} alternating rounds. netsnmp = 254 parallel snmpgetnext processes "
                "(cpu = their user+sys). snmpsim shares the same 2 cores.",
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
