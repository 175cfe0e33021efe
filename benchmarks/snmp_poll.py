"""Polling throughput, CPU per device vs `snmpbulkwalk`, and agent RSS with 500 printers.

Run: .venv/bin/python benchmarks/snmp_poll.py   (writes benchmarks/results/snmp_poll.json)
500 simulated printers = 500 loopback addresses (127.0.22.x / 127.0.23.x) served by 4
snmpsim processes, each address answering one of the 11 printer recordings. The
reference, in the same run, is net-snmp `snmpbulkwalk` of the same Printer-MIB /
Host-Resources subtrees (client CPU measured with RUSAGE_CHILDREN). Every printer is polled
as the agent polls it, with the sysObjectID discovery read: vendor page counters are on.
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.polling import PolledDevice, poll_device
from agent.snmp import oids
from agent.snmp.profiles import profile_for
from agent.snmp.transport import SnmpClient, SnmpTarget
from lab import snmprec
from lab.catalog import PRINTERS
from lab.snmp import SnmpLab
from printgate.domain import SnmpCredential

N = 500
OUT = Path(__file__).parent / "results" / "snmp_poll.json"
SUBTREES = ["1.3.6.1.2.1.43.10.2.1", "1.3.6.1.2.1.43.11.1.1", "1.3.6.1.2.1.43.12.1.1",
            "1.3.6.1.2.1.43.18.1.1", "1.3.6.1.2.1.25.3.2.1", "1.3.6.1.2.1.25.3.5.1"]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


async def main() -> None:
    addrs = [f"127.0.{22 + i // 250}.{1 + i % 250}" for i in range(N)]
    devices = {ip: PRINTERS[i % len(PRINTERS)].name for i, ip in enumerate(addrs)}
    sys_oids = {d.name: str(snmprec.load(d.recording)[oids.SYS_OBJECT_ID].value) for d in PRINTERS}
    t0 = time.monotonic()
    lab = SnmpLab(devices, processes=4)
    await lab.start(ready_timeout=900)  # 500 addresses: minutes on a loaded 2-core box
    try:
        startup = time.monotonic() - t0
        cred = SnmpCredential.v2c("public")
        async with SnmpClient(timeout=2.0, retries=1, max_in_flight=64) as client:
            # as the agent polls them: with the sysObjectID discovery read, so vendor counters are on
            polled = [PolledDevice(ip, SnmpTarget(ip, lab.port, cred), sys_object_id=sys_oids[devices[ip]])
                      for ip in addrs]
            with_vendor_counters = sum(bool(profile_for(d.sys_object_id).counters) for d in polled)
            await poll_device(client, polled[0])  # warm-up
            rounds = []
            for _ in range(2):
                cpu0, w0 = time.process_time(), time.monotonic()
                sem = asyncio.Semaphore(64)

                async def one(d: PolledDevice, sem: asyncio.Semaphore = sem) -> bool:
                    async with sem:
                        r = await poll_device(client, d)
                    return not r.errors and bool(r.supplies)

                ok = await asyncio.gather(*(one(d) for d in polled))
                rounds.append({"wall_s": time.monotonic() - w0, "cpu_s": time.process_time() - cpu0,
                               "ok": sum(ok)})
            rss = rss_mb()
            sample = addrs[:40]
            cpu_ours0 = time.process_time()
            for d in polled[:len(sample)]:
                await poll_device(client, d)
            ours_cpu_per_dev = (time.process_time() - cpu_ours0) / len(sample)
        c0 = children_cpu()
        for ip in sample:
            for tree in SUBTREES:
                subprocess.run(["snmpbulkwalk", "-v2c", "-c", "public", "-On", "-Cr20", "-t", "2", "-r", "1",
                                f"{ip}:{lab.port}", tree], capture_output=True, check=False)
        ref_cpu_per_dev = (children_cpu() - c0) / len(sample)
    finally:
        await lab.aclose()
    best = min(rounds, key=lambda r: r["cpu_s"])
    result = {
        "printers": N, "snmpsim_processes": 4, "lab_startup_s": round(startup, 1),
        "rounds": [{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()} for r in rounds],
        "printers_per_minute_per_core": round(N / best["cpu_s"] * 60),
        "printers_per_minute_wall": round(N / best["wall_s"] * 60),
        "ours_cpu_ms_per_device": round(ours_cpu_per_dev * 1000, 2),
        "snmpbulkwalk_cpu_ms_per_device": round(ref_cpu_per_dev * 1000, 2),
        "cpu_ratio_vs_snmpbulkwalk": round(ours_cpu_per_dev / ref_cpu_per_dev, 2),
        "agent_rss_mb_polling_500": round(rss, 1),
        "vendor_counters_on": True,
        "printers_with_vendor_counter_profiles": with_vendor_counters,
        "note": "2 shared cores, other engineers' tests running: noisy; wall rate is bounded by snmpsim "
                "(~1.2k req/s per process), CPU rate is ours. snmpbulkwalk CPU includes process start-up "
                "(one process per subtree, as a script would do).",
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
