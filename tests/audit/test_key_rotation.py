"""Audit key rotation (issue 18 item 4): key ids, key sets with validity, `printgate keys rotate audit`.

A running gateway's signer (``open_gateway_signer``) keeps signing across a
rotation done by the CLI in another process-like step; the whole history then
verifies with the key set, not with either key alone; a retired key that signs
later is refused; a witness cosignature of an old-key checkpoint still counts.
"""

from __future__ import annotations

import asyncio
import json
import stat
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from audit.checkpoint import Signer
from audit.cosignature import Cosigner, WitnessVerifier
from audit.export import export_jsonl, verify_store
from audit.keyset import KEY_SET_FILE, load_key_set, open_gateway_signer
from audit.log import AuditLog
from audit.verify import Damage
from printgate.cli import build_app
from printgate.domain import event_types
from printgate.store import audit as store
from printgate.store.db import Database, migrate
from tests.audit.conftest import sample_events

runner = CliRunner()


def _cli(*args: str) -> tuple[int, str]:
    res = runner.invoke(build_app(), list(args))
    return res.exit_code, res.output


async def _write(url: str, signer: Signer | None, n: int) -> None:
    async with Database(url) as db:
        log = AuditLog(db, signer)
        await log.append_many(sample_events(n))
        await log.checkpoint()


def test_rotation_keeps_history_verifiable_with_the_key_set(database_url: str, tmp_path: Path) -> None:
    data = tmp_path / "gw"
    data.mkdir()
    asyncio.run(migrate(database_url))
    running = open_gateway_signer(data)  # what `printgate serve` holds
    old_id = running.key_id
    asyncio.run(_write(database_url, running, 12))

    code, out = _cli("keys", "rotate", "audit", "--data-dir", str(data), "--database-url", database_url)
    assert code == 0, out
    new_id = Signer.load(data / "audit-signing.key").key_id
    assert new_id != old_id and new_id in out and old_id in out
    assert stat.S_IMODE((data / "audit-signing.key").stat().st_mode) == 0o600

    # the running gateway signs with the new key from its next checkpoint on, without a restart
    asyncio.run(_write(database_url, running, 5))
    assert running.key_id == new_id

    async def inspect() -> tuple[list[str], dict[str, object]]:
        async with Database(database_url) as db:
            ids = [c.key_id for c in await store.checkpoints(db)]
            recs = [r for b in [b async for b in store.iter_records(db)] for r in b]
            rotated = [json.loads(r.entry) for r in recs if r.entry and event_types.KEYS_ROTATED in r.entry]
        return ids, rotated[0]["details"]

    ids, details = asyncio.run(inspect())
    assert ids[0] == old_id and ids[-1] == new_id and set(ids) == {old_id, new_id}
    assert details["old_key_id"] == old_id and details["new_key_id"] == new_id

    keys = load_key_set(data / KEY_SET_FILE)
    old_entry, new_entry = keys.get(old_id), keys.get(new_id)
    assert old_entry is not None and new_entry is not None
    assert old_entry.not_after is not None and new_entry.not_after is None
    assert new_entry.not_before is not None and new_entry.not_before <= old_entry.not_after

    code, out = _cli("audit", "verify", "--key-set", str(data / KEY_SET_FILE), "--database-url", database_url)
    assert code == 0, out
    # the new public key alone no longer explains the old checkpoints
    code, out = _cli("audit", "verify", "--public-key", str(data / "audit-public.pem"),
                     "--database-url", database_url)
    assert code == 1 and old_id in out, out
    assert "hint: if the audit key was rotated" in out and "--key-set" in out, out  # the documented case, said

    code, out = _cli("keys", "list", "--data-dir", str(data))
    assert code == 0, out
    lines = out.splitlines()
    assert any(old_id in ln and "verify only" in ln for ln in lines), out
    assert any(new_id in ln and "(signing)" in ln for ln in lines), out


def test_a_retired_key_signing_later_is_refused(database_url: str, tmp_path: Path) -> None:
    data = tmp_path / "gw"
    data.mkdir()
    asyncio.run(migrate(database_url))
    running = open_gateway_signer(data)
    stolen = Signer.load(data / "audit-signing.key")  # a copy of the key taken before the rotation
    asyncio.run(_write(database_url, running, 4))
    code, out = _cli("keys", "rotate", "audit", "--data-dir", str(data), "--database-url", database_url,
                     "--overlap-seconds", "0")
    assert code == 0, out
    asyncio.run(_write(database_url, stolen, 3))  # signed now, after the key was retired

    async def verify() -> object:
        async with Database(database_url) as db:
            return await verify_store(db, load_key_set(data / KEY_SET_FILE))

    report = asyncio.run(verify())
    assert not report.ok  # type: ignore[attr-defined]
    problem = report.problem  # type: ignore[attr-defined]
    assert problem.kind is Damage.FORGED_CHECKPOINT and "retired" in problem.message, problem


def test_witness_cosignature_of_an_old_key_checkpoint_verifies_after_rotation(
        database_url: str, tmp_path: Path) -> None:
    data = tmp_path / "gw"
    data.mkdir()
    asyncio.run(migrate(database_url))
    running = open_gateway_signer(data)
    witness = Cosigner.generate()

    async def write_and_cosign() -> None:
        async with Database(database_url) as db:
            log = AuditLog(db, running)
            await log.append_many(sample_events(6))
            cp = await log.checkpoint()
            assert cp is not None
            c = witness.cosign(cp, at=cp.at)
            async with db.transaction() as s:
                await store.insert_cosignature(s, {
                    "witness": c.witness, "tree_size": cp.tree_size, "witness_public_key": c.witness_public_key,
                    "cosigned_at": c.cosigned_at, "signature": c.signature, "root": cp.root, "head": cp.head,
                    "checkpoint_at": cp.at, "key_id": cp.key_id, "checkpoint_signature": cp.signature,
                    "received_at": datetime.now(UTC)})

    asyncio.run(write_and_cosign())
    code, out = _cli("keys", "rotate", "audit", "--data-dir", str(data), "--database-url", database_url)
    assert code == 0, out
    asyncio.run(_write(database_url, running, 4))
    pub = tmp_path / "witness.pub"
    pub.write_text(witness.public_key_pem())
    code, out = _cli("audit", "verify", "--key-set", str(data / KEY_SET_FILE), "--witness-key", str(pub),
                     "--database-url", database_url)
    assert code == 0, out
    assert f"witness {WitnessVerifier.load(pub).key_id}" in out

    # the exported bundle names the key ids a verifier needs
    async def export() -> list[str]:
        async with Database(database_url) as db:
            await export_jsonl(db, tmp_path / "out.jsonl")
        return list(json.loads((tmp_path / "out.jsonl").read_text().splitlines()[0])["@header"]["key_ids"])

    assert set(asyncio.run(export())) == {c.key_id for c in load_key_set(data / KEY_SET_FILE)}
    code, out = _cli("audit", "verify", "--key-set", str(data / KEY_SET_FILE), "--file", str(tmp_path / "out.jsonl"))
    assert code == 0, out


def test_rotation_without_a_database_changes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "gw"
    data.mkdir()
    signer = open_gateway_signer(data)
    before = (data / "audit-signing.key").read_bytes(), (data / KEY_SET_FILE).read_bytes()
    code, out = _cli("keys", "rotate", "audit", "--data-dir", str(data),
                     "--database-url", f"sqlite+aiosqlite:///{tmp_path}/missing/none.db")
    assert code != 0, out
    assert ((data / "audit-signing.key").read_bytes(), (data / KEY_SET_FILE).read_bytes()) == before
    assert Signer.load(data / "audit-signing.key").key_id == signer.key_id


def test_rotate_refuses_without_a_signing_key(tmp_path: Path) -> None:
    code, out = _cli("keys", "rotate", "audit", "--data-dir", str(tmp_path / "empty"),
                     "--database-url", f"sqlite+aiosqlite:///{tmp_path}/a.db")
    assert code == 2 and "audit-signing.key" in out, out


def test_the_gateway_refuses_a_restored_retired_signing_key(database_url: str, tmp_path: Path) -> None:
    from printgate.errors import ConfigError

    data = tmp_path / "gw"
    data.mkdir()
    asyncio.run(migrate(database_url))
    open_gateway_signer(data)
    backup = (data / "audit-signing.key").read_bytes()
    code, out = _cli("keys", "rotate", "audit", "--data-dir", str(data), "--database-url", database_url)
    assert code == 0, out
    (data / "audit-signing.key").write_bytes(backup)
    try:
        open_gateway_signer(data)
    except ConfigError as exc:
        assert "retired" in exc.message
    else:
        raise AssertionError("a retired signing key was accepted")


def test_overlap_lets_a_node_not_yet_given_the_new_key_sign(database_url: str, tmp_path: Path) -> None:
    """Nodes with their own copy of the key files: the old key signs for --overlap-seconds more."""
    data = tmp_path / "gw"
    data.mkdir()
    asyncio.run(migrate(database_url))
    running = open_gateway_signer(data)
    other_node = Signer.load(data / "audit-signing.key")  # node 2's copy, not yet replaced
    asyncio.run(_write(database_url, running, 4))
    code, out = _cli("keys", "rotate", "audit", "--data-dir", str(data), "--database-url", database_url,
                     "--overlap-seconds", "600")
    assert code == 0, out
    asyncio.run(_write(database_url, other_node, 3))
    code, out = _cli("audit", "verify", "--key-set", str(data / KEY_SET_FILE), "--database-url", database_url)
    assert code == 0, out
