"""`printgate audit` commands end to end on a SQLite store (real subprocesses)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from audit.checkpoint import Checkpoint, Signer
from audit.log import AuditLog
from audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from printgate.store.db import Database, migrate
from tests.audit.conftest import sample_events

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from printgate.cli import main; main()", "audit", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)


async def test_keygen_checkpoint_export_verify_and_prove(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/a.db"
    key = tmp_path / "audit.key"
    r = cli("keygen", "--out", str(key))
    assert r.returncode == 0, r.stderr
    assert key.stat().st_mode & 0o777 == 0o600
    assert cli("keygen", "--out", str(key)).returncode == 2
    await migrate(url)
    async with Database(url) as db:
        await AuditLog(db, Signer.load(key), checkpoint_every=7).append_many(sample_events(30))
    pub = str(key) + ".pub"
    r = cli("checkpoint", "--key", str(key), "--database-url", url)
    assert r.returncode == 0, r.stderr
    anchor = tmp_path / "kept-checkpoint.json"
    anchor.write_text(r.stdout)
    r = cli("verify", "--public-key", pub, "--database-url", url, "--anchor", str(anchor))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("OK: 30 records")

    out = tmp_path / "export.jsonl"
    assert cli("export", "--out", str(out), "--database-url", url).returncode == 0
    assert cli("verify", "--public-key", pub, "--file", str(out)).returncode == 0
    sub = tmp_path / "cust.jsonl"
    assert cli("export", "--out", str(sub), "--customer", "cust-1", "--database-url", url).returncode == 0
    r = cli("verify", "--public-key", pub, "--file", str(sub))
    assert r.returncode == 0 and r.stdout.startswith("OK: 10 records"), r.stdout + r.stderr
    cef = tmp_path / "all.cef"
    assert cli("export", "--out", str(cef), "--format", "cef", "--database-url", url).returncode == 0
    assert cef.read_text().startswith("CEF:0|printgate|printgate|")

    proof = json.loads(cli("prove", "--seq", "12", "--database-url", url).stdout)
    cp = Checkpoint.from_json(proof["checkpoint"])
    assert Signer.load(key).verifier().is_valid(cp)
    assert verify_inclusion(leaf_hash(bytes.fromhex(proof["record_hash"])), 11, cp.tree_size,
                            [bytes.fromhex(p) for p in proof["path"]], bytes.fromhex(cp.root))
    cons = json.loads(cli("prove", "--from", "14", "--database-url", url).stdout)
    assert verify_consistency(14, cp.tree_size, bytes.fromhex(cons["old_root"]), bytes.fromhex(cp.root),
                              [bytes.fromhex(p) for p in cons["path"]])

    r = cli("erase", "--actor", "user1@dealer.example", "--requested-by", "dpo@example", "--database-url", url)
    assert r.returncode == 0 and r.stdout.startswith("erased the personal values of 6 records"), r.stderr
    r = cli("prune", "--keep-days", "0", "--customer", "cust-2", "--database-url", url)
    assert r.returncode == 0 and r.stdout.startswith("pruned 10 records"), r.stderr
    r = cli("verify", "--public-key", pub, "--database-url", url)
    assert r.returncode == 0 and "10 pruned" in r.stdout, r.stderr

    c = sqlite3.connect(tmp_path / "a.db")
    c.execute("DELETE FROM audit_records WHERE seq = 9")
    c.commit()
    c.close()
    r = cli("verify", "--public-key", pub, "--database-url", url)
    assert r.returncode == 1
    assert "deleted: record 9" in r.stderr
    other = tmp_path / "other.key"
    Signer.generate().save(other)
    other.with_name("other.key.pub").write_text(Signer.load(other).public_key_pem())
    r = cli("verify", "--public-key", str(other) + ".pub", "--file", str(out))
    assert r.returncode == 1 and "forged_checkpoint" in r.stderr
