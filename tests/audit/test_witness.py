"""Audit witnesses: a real `printgate audit witness` process against the gateway's
API served by uvicorn on loopback; truncated tails, forked logs, an offline witness."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import uvicorn
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pydantic import SecretStr
from sqlalchemy import Connection, text

from audit.checkpoint import Signer
from audit.cosignature import Cosigner
from audit.log import AuditLog
from lab.ports import free_tcp_port
from portal.app import create_app
from portal.auth.api_tokens import new_token
from printgate.domain import (
    AuditEventIn,
    Customer,
    CustomerId,
    Dealer,
    DealerId,
    Role,
    User,
    UserId,
)
from printgate.settings import PortalSettings
from printgate.store import tenants
from printgate.store.db import Database
from printgate.store.models import Base
from printgate.store.models.identity import ApiTokenRow
from tests.audit.conftest import sample_events

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from printgate.cli import main; main()", "audit"]


@dataclass
class Gateway:
    """The gateway side: its audit log (own signing key) and the portal API on loopback."""

    db: Database
    log: AuditLog
    signer: Signer
    url: str
    dir: Path
    server: uvicorn.Server | None = None
    task: asyncio.Task[None] | None = None

    @property
    def public_key(self) -> Path:
        return self.dir / "gateway.pub"

    async def start(self) -> None:
        port = int(self.url.rsplit(":", 1)[1])
        app = create_app(PortalSettings(port=port, public_url=self.url, secret_key=SecretStr(secrets.token_urlsafe(32))),
                         db=self.db, broker=None, audit=self.log)  # type: ignore[arg-type]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                                    lifespan="off", access_log=False))
        self.task = asyncio.create_task(self.server.serve())
        async with asyncio.timeout(10):
            while not self.server.started:
                await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self.server is not None and self.task is not None:
            self.server.should_exit = True
            await asyncio.wait_for(self.task, 10)
            self.server = self.task = None

    async def grow(self, n: int) -> int:
        """Append ``n`` events and sign a checkpoint over the whole log; its tree size."""
        await self.log.append_many(sample_events(n))
        cp = await self.log.checkpoint()
        assert cp is not None
        return cp.tree_size


async def _token(db: Database, scopes: list[str]) -> str:
    token_id, token, digest = new_token()
    async with db.transaction() as s:
        s.add(ApiTokenRow(id=token_id, user_id="u-sec", name="witness", token_hash=digest, scopes=scopes,
                          created_at=datetime.now(UTC)))
    return token


@pytest.fixture
async def gateway(db: Database, tmp_path: Path) -> AsyncIterator[Gateway]:
    signer = Signer.generate()
    (tmp_path / "gateway.pub").write_text(signer.public_key_pem())
    async with db.transaction() as s:
        await tenants.add_dealer(s, Dealer(DealerId("dealer-w"), "W dealer"))
        await s.flush()
        await tenants.add_customer(s, Customer(CustomerId("cust-w"), DealerId("dealer-w"), "W customer"))
        await s.flush()
        await tenants.add_user(s, User(UserId("u-sec"), "sec@customer.example", "Security team",
                                       frozenset({Role.AUDITOR}), dealer_id=DealerId("dealer-w"),
                                       customer_id=CustomerId("cust-w")))
    gw = Gateway(db, AuditLog(db, signer, checkpoint_every=10**9), signer,
                 f"http://127.0.0.1:{free_tcp_port()}", tmp_path)
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


@dataclass
class WitnessBox:
    """The customer's machine: witness key, state file, token file."""

    dir: Path
    token_file: Path
    gateway: Gateway

    @property
    def key(self) -> Path:
        return self.dir / "witness.key"

    @property
    def state(self) -> Path:
        return self.dir / "state.json"

    def args(self, *extra: str) -> list[str]:
        return [*CLI, "witness", "--gateway", self.gateway.url, "--token-file", str(self.token_file),
                "--gateway-key", str(self.gateway.public_key), "--key", str(self.key), "--state", str(self.state),
                *extra]

    async def once(self) -> tuple[int, str, str]:
        return await run(*self.args("--once"))

    async def once_with(self, *extra: str) -> tuple[int, str, str]:
        return await run(*self.args("--once", *extra))


async def run(*argv: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(*argv, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def witness(gateway: Gateway, tmp_path: Path) -> WitnessBox:
    box = tmp_path / "witness-machine"
    box.mkdir()
    (box / "token").write_text(await _token(gateway.db, ["audit:witness"]))
    w = WitnessBox(box, box / "token", gateway)
    code, out, err = await run(*CLI, "witness", "keygen", "--out", str(w.key))
    assert code == 0, err
    assert "witness id" in out and w.key.stat().st_mode & 0o777 == 0o600
    return w


async def verify(gw: Gateway, *extra: str) -> tuple[int, str, str]:
    return await run(*CLI, "verify", "--public-key", str(gw.public_key), "--database-url", gw.db.url, *extra)


def witness_id(w: WitnessBox) -> str:
    return Cosigner.load(w.key).key_id


async def verify_tenant_export(gw: Gateway, path: Path, w: WitnessBox) -> tuple[int, str, str]:
    """A customer's own export (inclusion proofs, cosignatures, consistency proofs), verified offline."""
    code, _, err = await run(*CLI, "export", "--out", str(path), "--customer", "cust-1", "--database-url", gw.db.url)
    assert code == 0, err
    return await run(*CLI, "verify", "--public-key", str(gw.public_key), "--file", str(path),
                     "--witness-key", f"{w.key}.pub")


async def test_the_witness_cosigns_consistent_checkpoints_and_the_gateway_stores_them(
        gateway: Gateway, witness: WitnessBox, tmp_path: Path) -> None:
    code, out, err = await witness.once()
    assert (code, out.strip()) == (0, "the gateway has no signed checkpoint yet; nothing to cosign"), err
    first = await gateway.grow(20)
    code, out, err = await witness.once()
    assert code == 0 and f"cosigned checkpoint {first}" in out, err
    second = await gateway.grow(11)  # 20 + the audit.witness.cosigned record + 11
    code, out, err = await witness.once()
    assert code == 0 and f"cosigned checkpoint {second}" in out, err
    code, out, err = await witness.once()  # nothing new: no second cosignature, the old one re-sent
    assert code == 0 and "already cosigned" in out, err
    async with gateway.db.session() as s:
        sizes = (await s.execute(text("SELECT tree_size FROM audit_cosignatures ORDER BY tree_size"))).scalars().all()
        audited = (await s.execute(text("SELECT count(*) FROM audit_records WHERE type = 'audit.witness.cosigned'"))
                   ).scalar_one()
    assert (list(sizes), audited) == ([first, second], 2)
    state = json.loads(witness.state.read_text())
    assert state["cosignature"]["checkpoint"]["tree_size"] == second
    code, out, err = await verify(gateway, "--witness-key", f"{witness.key}.pub")
    assert code == 0, err
    assert f"witness {witness_id(witness)}: newest cosigned checkpoint {second}" in out
    code, out, err = await verify_tenant_export(gateway, tmp_path / "tenant.jsonl", witness)
    assert code == 0, err
    assert f"witness {witness_id(witness)}: newest cosigned checkpoint {second}" in out


async def test_a_tail_cut_after_the_witness_saw_it_is_refused_by_verify_and_the_witness(
        gateway: Gateway, witness: WitnessBox, tmp_path: Path) -> None:
    await gateway.grow(12)
    cut_to = await gateway.grow(8)  # 20
    assert (await witness.once())[0] == 0
    seen = await gateway.grow(10)  # 31: the witness cosigns it
    assert (await witness.once())[0] == 0
    await export(gateway, tmp_path / "before-cut.jsonl")
    # the operator cuts the last records with their checkpoints and fixes the head row
    async with gateway.db.transaction() as s:
        head = (await s.execute(text("SELECT hash FROM audit_records WHERE seq = :n"), {"n": cut_to})).scalar_one()
        for table in ("audit_personal", "audit_records"):
            await s.execute(text(f"DELETE FROM {table} WHERE seq > :n"), {"n": cut_to})
        await s.execute(text("DELETE FROM audit_checkpoints WHERE tree_size > :n"), {"n": cut_to})
        await s.execute(text("UPDATE audit_head SET seq = :n, hash = :h"), {"n": cut_to, "h": head})
    code, out, err = await verify(gateway)  # without the witness the cut is invisible
    assert code == 0, err
    wid = witness_id(witness)
    code, out, err = await verify(gateway, "--witness-key", f"{witness.key}.pub")
    assert code == 1
    assert f"witness {wid}" in err and f"cosigned checkpoint {seen} over {seen} records, but only {cut_to}" in err
    assert "tail of the log was cut" in err
    code, out, err = await verify_tenant_export(gateway, tmp_path / "tenant.jsonl", witness)
    assert code == 1 and f"witness {wid}" in err and "tail of the log was cut" in err, (out, err)
    # removing the cosignatures too does not help: the witness's state file is evidence
    async with gateway.db.transaction() as s:
        await s.execute(text("DELETE FROM audit_cosignatures"))
    code, out, err = await verify(gateway, "--witness-key", f"{witness.key}.pub")
    assert code == 1 and "unwitnessed" in err and wid in err
    code, out, err = await verify(gateway, "--witness-key", f"{witness.key}.pub", "--anchor", str(witness.state))
    assert code == 1 and f"witness {wid}" in err and f"checkpoint {seen}" in err
    # and the witness refuses the shortened log, saying why, and keeps its state
    await gateway.grow(3)
    before = witness.state.read_bytes()
    code, out, err = await witness.once()
    assert code == 1, (out, err)
    assert "REFUSED (truncated)" in err and "cosigned at" in err and str(seen) in err
    assert witness.state.read_bytes() == before
    # an export cut the same way fails too (export mode)
    lines = (tmp_path / "before-cut.jsonl").read_bytes().splitlines(keepends=True)
    records = [i for i, raw in enumerate(lines) if raw.startswith(b'{"at":')]
    (tmp_path / "cut.jsonl").write_bytes(b"".join(lines[:records[cut_to]]))
    code, out, err = await run(*CLI, "verify", "--public-key", str(gateway.public_key), "--file",
                               str(tmp_path / "cut.jsonl"), "--witness-key", f"{witness.key}.pub")
    assert code == 1 and f"witness {wid}" in err and "tail of the log was cut" in err


async def export(gw: Gateway, path: Path) -> None:
    code, _, err = await run(*CLI, "export", "--out", str(path), "--with-personal", "--database-url", gw.db.url)
    assert code == 0, err


async def test_a_history_rewritten_after_a_cosignature_is_a_fork_both_see(
        gateway: Gateway, witness: WitnessBox, tmp_path: Path) -> None:
    seen = await gateway.grow(16)
    assert (await witness.once())[0] == 0
    # the operator (who holds the signing key) rewrites records 6.. and re-signs everything
    async with gateway.db.transaction() as s:
        for table in ("audit_personal", "audit_records"):
            await s.execute(text(f"DELETE FROM {table} WHERE seq >= 6"))
        await s.execute(text("DELETE FROM audit_checkpoints"))
        head = (await s.execute(text("SELECT hash FROM audit_records WHERE seq = 5"))).scalar_one()
        await s.execute(text("UPDATE audit_head SET seq = 5, hash = :h"), {"h": head})
    await gateway.log.append_many([AuditEventIn(type="auth.login", actor="someone-else@example",
                                                details={"i": i}) for i in range(30)])
    await gateway.log.checkpoint()
    code, out, err = await verify(gateway)
    assert code == 0, err  # consistent in itself, signed by the right key
    wid = witness_id(witness)
    code, out, err = await verify(gateway, "--witness-key", f"{witness.key}.pub")
    assert code == 1 and "rewritten" in err and f"witness {wid}" in err and f"checkpoint {seen}" in err
    code, out, err = await verify_tenant_export(gateway, tmp_path / "tenant.jsonl", witness)
    assert code == 1 and "rewritten" in err and f"witness {wid}" in err and f"checkpoint {seen}" in err
    code, out, err = await witness.once()
    assert code == 1 and "REFUSED (forked)" in err and f"checkpoint {seen}" in err, (out, err)


async def test_an_offline_witness_leaves_the_gateway_working_and_verify_names_its_newest_checkpoint(
        gateway: Gateway, witness: WitnessBox) -> None:
    first = await gateway.grow(10)
    loop = await asyncio.create_subprocess_exec(*witness.args("--interval", "0.3"), cwd=ROOT,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert loop.stdout is not None
        line = await asyncio.wait_for(loop.stdout.readline(), 60)
        assert f"cosigned checkpoint {first}" in line.decode()
        await gateway.stop()  # the gateway goes away for a while: the witness says so and keeps going
        while b"gateway unavailable (unreachable)" not in (line := await asyncio.wait_for(loop.stdout.readline(), 30)):
            pass
        await gateway.start()
        second = await gateway.grow(5)
        while f"cosigned checkpoint {second}".encode() not in (line := await asyncio.wait_for(loop.stdout.readline(), 30)):
            pass
    finally:
        with contextlib.suppress(ProcessLookupError):
            loop.send_signal(signal.SIGTERM)
        await asyncio.wait_for(loop.wait(), 10)
    # the witness is now offline; the gateway keeps logging and signing
    third = await gateway.grow(25)
    code, out, err = await verify(gateway, "--witness-key", f"{witness.key}.pub")
    assert code == 0, err
    assert (f"witness {witness_id(witness)}: newest cosigned checkpoint {second} " in out
            and f"{third - second} records after it not yet witnessed" in out), out
    code, out, err = await witness.once()  # back online: catches up over the gap
    assert code == 0 and f"cosigned checkpoint {third}" in out, err


async def test_the_witness_api_is_scoped_and_stores_only_genuine_cosignatures(
        gateway: Gateway, witness: WitnessBox) -> None:
    size = await gateway.grow(5)
    wtoken = witness.token_file.read_text()
    other = await _token(gateway.db, ["devices:read"])
    reader = await _token(gateway.db, ["audit:read"])
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as c:
        def auth(t: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {t}"}
        assert (await c.get("/audit/checkpoints/latest", headers=auth(wtoken))).json()["tree_size"] == size
        assert (await c.get("/audit/checkpoints/latest", headers=auth(reader))).status_code == 200
        assert (await c.get("/audit/checkpoints/latest", headers=auth(other))).status_code == 403
        assert (await c.get("/audit/checkpoints/latest")).status_code == 401
        assert (await c.get("/audit/events", headers=auth(wtoken))).status_code == 403  # a witness reads no events
        assert (await c.get("/audit/events", headers=auth(reader))).status_code == 200
        assert (await c.get("/audit/events.csv", headers=auth(reader))).status_code == 200  # audited download
        cp = (await c.get("/audit/checkpoints/latest", headers=auth(wtoken))).json()
        from audit.checkpoint import Checkpoint

        cosig = Cosigner.load(witness.key).cosign(Checkpoint.from_json(cp), at="2026-12-05T10:00:00.000000Z")
        forged = {**cosig.to_json(), "signature": "00" * 64}
        r = await c.post(f"/audit/checkpoints/{size}/cosignatures", json=forged, headers=auth(wtoken))
        assert r.status_code == 400 and "not valid" in r.json()["detail"]
        other_cp = {**cp, "root": "ab" * 32}
        bogus = Cosigner.load(witness.key).cosign(Checkpoint.from_json(other_cp), at="2026-12-05T10:00:00.000000Z")
        r = await c.post(f"/audit/checkpoints/{size}/cosignatures", json=bogus.to_json(), headers=auth(wtoken))
        assert r.status_code == 409
        r = await c.post(f"/audit/checkpoints/{size}/cosignatures", json=cosig.to_json(), headers=auth(other))
        assert r.status_code == 403
        r = await c.post(f"/audit/checkpoints/{size}/cosignatures", json=cosig.to_json(), headers=auth(wtoken))
        assert r.status_code == 201 and r.json()["stored"] is True
        r = await c.get("/audit/proofs/consistency", params={"first": 2, "second": size}, headers=auth(wtoken))
        assert r.status_code == 200 and r.json()["new_size"] == size


async def test_the_migration_creates_exactly_the_cosignature_table(db: Database) -> None:
    def diff(conn: Connection) -> list[object]:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return [d for d in compare_metadata(ctx, Base.metadata) if "audit_cosignatures" in repr(d)]

    async with db.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_the_witness_says_what_is_wrong_and_signs_nothing(gateway: Gateway, witness: WitnessBox) -> None:
    await gateway.grow(4)
    impostor = witness.dir / "impostor.pub"  # the witness pinned another gateway key
    impostor.write_text(Signer.generate().public_key_pem())
    argv = [a if a != str(gateway.public_key) else str(impostor) for a in witness.args("--once")]
    code, out, err = await run(*argv)
    assert code == 1 and "REFUSED (forged)" in err and not witness.state.exists(), (out, err)
    witness.token_file.write_text("pgt_0000_not-a-token")
    code, out, err = await witness.once()
    assert code == 3 and "refused the witness token (401" in err and not witness.state.exists(), (out, err)
    witness.token_file.write_text(await _token(gateway.db, ["audit:witness"]))
    witness.state.write_text("{not json")
    code, out, err = await witness.once()
    assert code == 2 and f"cannot read the witness state {witness.state}" in err, (out, err)
    witness.state.unlink()
    code, out, err = await run(*[a for a in witness.args("--once") if a != "--once"][:-2], "--once")  # no --state
    assert code == 2 and "missing --state" in err
