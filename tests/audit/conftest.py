"""Audit fixtures: a signing key, a populated log and its export (built once)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from audit.checkpoint import Signer
from audit.export import export_jsonl
from audit.log import AuditLog
from printgate.domain import AuditEventIn, Outcome
from printgate.store.db import Database, migrate


@pytest.fixture(scope="session")
def signer() -> Signer:
    return Signer.generate()


def sample_events(n: int, *, tenant_mod: int = 3) -> list[AuditEventIn]:
    outcomes = list(Outcome)
    return [
        AuditEventIn(
            type=("dwa.request", "auth.login", "dwa.session.opened", "firewall.rule.added")[i % 4],
            outcome=outcomes[i % len(outcomes)],
            actor=f"user{i % 5}@dealer.example",
            dealer_id=f"dealer-{i % 2}",
            customer_id=f"cust-{i % tenant_mod}",
            device_id=f"dev-{i % 7}",
            session_id=f"sess-{i // 10}",
            source_ip=f"127.0.0.{i % 250 + 1}",
            details={"i": i, "path": f"/page/{i}", "status": 200, "note": "žluť ✓"},
        )
        for i in range(n)
    ]


@dataclass(frozen=True, repr=False)
class BuiltLog:
    db_file: Path
    export_lines: list[bytes]
    records: int


@pytest.fixture(scope="session")
async def built_log(tmp_path_factory: pytest.TempPathFactory, signer: Signer) -> BuiltLog:
    """60 records, checkpoints every 16 plus one at the head, SQLite file + full export."""
    d = tmp_path_factory.mktemp("auditlog")
    url = f"sqlite+aiosqlite:///{d}/base.db"
    await migrate(url)
    async with Database(url) as db:
        log = AuditLog(db, signer, checkpoint_every=16)
        events = sample_events(60)
        for i in range(0, 60, 7):
            await log.append_many(events[i:i + 7])
        await log.checkpoint()
        await export_jsonl(db, d / "full.jsonl", with_personal=True)
    lines = (d / "full.jsonl").read_bytes().splitlines()
    return BuiltLog(d / "base.db", lines, 60)


@pytest.fixture
async def copied_db(built_log: BuiltLog, tmp_path: Path) -> AsyncIterator[tuple[Database, Path]]:
    dst = tmp_path / "copy.db"
    shutil.copy(built_log.db_file, dst)
    async with Database(f"sqlite+aiosqlite:///{dst}") as db:
        yield db, dst
