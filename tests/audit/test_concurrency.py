"""8 writer processes appending at once -> one valid, gap-free chain."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from audit.checkpoint import Signer
from audit.export import verify_store
from printgate.store import audit as store
from printgate.store.db import Database

ROOT = Path(__file__).resolve().parents[2]
WRITERS = 8
EACH = 40


async def run_writers(url: str, key: Path) -> None:
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.audit.writer_proc", url, str(key), str(w), str(EACH), cwd=ROOT,
            stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
        )
        for w in range(WRITERS)
    ]
    results = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), timeout=120)
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err.decode()[-2000:]


async def test_eight_writer_processes_produce_one_gap_free_chain(db: Database, tmp_path: Path) -> None:
    signer = Signer.generate()
    key = tmp_path / "audit.key"
    signer.save(key)
    await run_writers(db.url, key)
    report = await verify_store(db, signer.verifier())
    assert report.ok, report.problem
    assert report.records == WRITERS * EACH
    seen: set[tuple[int, int]] = set()
    seqs: list[int] = []
    async for batch in store.iter_records(db):
        for row in batch:
            seqs.append(row.seq)
            d = json.loads(row.entry or "{}")["details"]
            seen.add((d["w"], d["i"]))
    assert seqs == list(range(1, WRITERS * EACH + 1))
    assert seen == {(w, i) for w in range(WRITERS) for i in range(EACH)}
    cps = await store.checkpoints(db)
    assert [c.tree_size for c in cps] == list(range(25, WRITERS * EACH + 1, 25))
