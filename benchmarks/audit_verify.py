"""Benchmark: offline `audit verify` of a 1,000,000-event export, and proof generation.

Reference in the same run: `sha256sum` over the same export file (the bare
cost of hashing those bytes with a C tool). Prints the ratio and writes
benchmarks/results/audit_verify.json. Numbers on a shared 2-core box are noisy.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audit.chain import GENESIS, build_entry, format_at, prepare, seal
from audit.checkpoint import Signer
from audit.merkle import Frontier, MerkleTree, leaf_hash
from audit.stream import checkpoint_line, header_line, read_export
from audit.verify import verify_items
from printgate.domain import AuditEventIn

N = int(os.environ.get("AUDIT_BENCH_N", "1000000"))
CHECKPOINT_EVERY = 1000
OUT = Path(__file__).resolve().parent / "results" / "audit_verify.json"


def build(path: Path, signer: Signer) -> list[bytes]:
    salt = os.urandom
    at = format_at(datetime.now(UTC))
    prev = GENESIS
    frontier = Frontier()
    hashes: list[bytes] = []
    with path.open("wb") as out:
        out.write(header_line({"subset": False, "with_personal": False}) + b"\n")
        buf: list[bytes] = []
        for i in range(1, N + 1):
            ev = AuditEventIn(type="dwa.request", actor=f"tech{i % 50}@dealer.example", dealer_id=f"d{i % 7}",
                              customer_id=f"c{i % 91}", device_id=f"dev{i % 997}", session_id=f"s{i // 40}",
                              source_ip="127.0.0.1",
                              details={"method": "GET", "path": f"/status/page{i % 300}.html", "status": 200,
                                       "bytes": 1000 + i % 5000})
            data, h = seal(build_entry(prepare(ev, salt), seq=i, at=at, prev=prev))
            buf.append(data)
            hb = bytes.fromhex(h)
            hashes.append(leaf_hash(hb))
            frontier.append(hashes[-1])
            prev = h
            if i % CHECKPOINT_EVERY == 0 or i == N:
                cp = signer.sign(tree_size=i, root=frontier.root(), head=h, at=at)
                buf.append(checkpoint_line(cp))
                out.write(b"\n".join(buf) + b"\n")
                buf = []
    return hashes


def main() -> None:
    signer = Signer.generate()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "export.jsonl"
        t0 = time.perf_counter()
        leaves = build(path, signer)
        build_s = time.perf_counter() - t0
        size = path.stat().st_size

        t0, c0 = time.perf_counter(), time.process_time()
        report = verify_items(read_export(path), signer.verifier())
        verify_s, verify_cpu_s = time.perf_counter() - t0, time.process_time() - c0
        assert report.ok, report.problem
        assert report.records == N and report.anchored == N

        t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(["sha256sum", str(path)], check=True, capture_output=True)
        sha_s = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        sha_cpu_s = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)

    t0 = time.perf_counter()
    tree = MerkleTree(leaves)
    tree_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for k in range(1000):
        tree.inclusion_proof((k * 7919) % N, N)
    incl_ms = (time.perf_counter() - t0)  # per proof in ms = total s
    t0 = time.perf_counter()
    for k in range(100):
        tree.consistency_proof(1 + (k * 104729) % (N - 1), N)
    cons_ms = (time.perf_counter() - t0) * 10

    result = {
        "events": N, "export_bytes": size, "build_s": round(build_s, 2),
        "verify_s": round(verify_s, 2), "verify_events_per_s": round(N / verify_s),
        "target_verify_s": 10.0, "meets_target": verify_s <= 10.0,
        "verify_cpu_s": round(verify_cpu_s, 2), "meets_target_in_cpu_time": verify_cpu_s <= 10.0,
        "reference_sha256sum_s": round(sha_s, 3), "reference_sha256sum_cpu_s": round(sha_cpu_s, 3),
        "ratio_verify_vs_sha256sum": round(verify_s / sha_s, 1),
        "ratio_verify_vs_sha256sum_cpu": round(verify_cpu_s / max(sha_cpu_s, 1e-6), 1),
        "load_average_1m": os.getloadavg()[0],
        "merkle_tree_build_s": round(tree_s, 2),
        "inclusion_proof_ms": round(incl_ms, 4), "consistency_proof_ms": round(cons_ms, 4),
        "checkpoints": report.checkpoints,
        "note": "2-core shared machine, other test suites running: noisy",
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"verify {N} events: {verify_s:.2f} s wall, {verify_cpu_s:.2f} s CPU; sha256sum of the same "
          f"file {sha_s:.2f} s wall, {sha_cpu_s:.2f} s CPU -> ratio {verify_s / sha_s:.1f}x wall, "
          f"{verify_cpu_s / max(sha_cpu_s, 1e-6):.1f}x CPU (load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
