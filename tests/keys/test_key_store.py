"""The key directory: current and trusted keys with validity, rotation with overlap, the CLI (audited)."""

from __future__ import annotations

import asyncio
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from mitmproxy.certs import CertStore
from typer.testing import CliRunner

from printgate.cli import build_app
from printgate.domain import event_types
from printgate.keys import ROTATABLE, FileKeyStore, agent_trust_set
from printgate.store import audit as audit_store
from printgate.store.db import Database, migrate

HOUR = timedelta(hours=1)


def _store(tmp_path: Path) -> FileKeyStore:
    store = FileKeyStore(tmp_path / "keys")
    for use in ROTATABLE:
        store.ensure(use)
    return store


@pytest.mark.parametrize("use", ROTATABLE)
def test_rotation_keeps_the_old_key_trusted_until_the_overlap_ends(tmp_path: Path, use: str) -> None:
    store = _store(tmp_path)
    before = store.current(use)  # type: ignore[arg-type]
    version = store.version()
    now = datetime.now(UTC)
    rotation = store.rotate(use, overlap=HOUR, now=now)  # type: ignore[arg-type]
    assert rotation.old.key_id == before.key_id != rotation.new.key_id
    assert store.version() != version  # running nodes notice
    assert store.current(use).key_id == rotation.new.key_id  # type: ignore[arg-type]
    assert stat.S_IMODE(store.path(use).stat().st_mode) == 0o600  # type: ignore[arg-type]
    during = [r.key_id for r in store.trusted(use, now + HOUR / 2)]  # type: ignore[arg-type]
    after = [r.key_id for r in store.trusted(use, now + 2 * HOUR)]  # type: ignore[arg-type]
    assert during == [rotation.new.key_id, before.key_id]
    assert after == [rotation.new.key_id]


def test_command_signing_keeps_the_retired_private_key_for_trust_sets(tmp_path: Path) -> None:
    store = _store(tmp_path)
    old = store.current("command-signing")
    rotation = store.rotate("command-signing", overlap=HOUR)
    kept = store.private_key("command-signing", old.key_id)
    assert kept and stat.S_IMODE((store.key_dir / str(rotation.old.private_file)).stat().st_mode) == 0o600
    doc, signer = agent_trust_set(store)
    assert signer == old.key_id  # agents that know only the old key can check the set
    assert {k.key_id for k in doc.command_keys} == {old.key_id, rotation.new.key_id}
    assert len(doc.relay_host_keys) == 1 and doc.relay_host_keys[0].fingerprint.startswith("SHA256:")
    ended = store.end_overlap("command-signing")
    assert [r.key_id for r in ended] == [old.key_id]
    doc, signer = agent_trust_set(store)
    assert signer == rotation.new.key_id and [k.key_id for k in doc.command_keys] == [rotation.new.key_id]
    # the next rotation deletes the private copy of a key past its overlap; prune forgets the key
    store.rotate("command-signing", overlap=HOUR, now=datetime.now(UTC) + timedelta(seconds=1))
    assert not (store.key_dir / str(rotation.old.private_file)).exists()
    code, out = _cli("keys", "prune", "--key-dir", str(store.key_dir))
    assert code == 0 and f"forgot command-signing key {old.key_id}" in out, out
    assert old.key_id not in [r.key_id for r in store.records()]


def test_session_ca_rotation_publishes_a_bundle_of_both_cas(tmp_path: Path) -> None:
    store = _store(tmp_path)
    old = store.current("session-ca")
    rotation = store.rotate("session-ca", overlap=HOUR)
    bundle = (store.key_dir / "dwa-ca" / "trusted-cas.pem").read_text()
    assert bundle.count("BEGIN CERTIFICATE") == 2 and old.public in bundle and rotation.new.public in bundle
    # mitmproxy's certificate file names the new CA: the proxy serves from it at its next start
    assert (store.key_dir / "dwa-ca" / "mitmproxy-ca-cert.pem").read_text() == rotation.new.public
    served = CertStore.from_store(store.key_dir / "dwa-ca", "mitmproxy", 2048)
    assert served.default_ca.fingerprint().hex()[:16] == rotation.new.key_id != old.key_id


def _cli(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(build_app(), list(args))
    return res.exit_code, res.output


def test_keys_rotate_and_list_through_the_cli_are_audited(database_url: str, tmp_path: Path) -> None:
    asyncio.run(migrate(database_url))
    store = _store(tmp_path)
    old = {use: store.current(use).key_id for use in ROTATABLE}
    for use in ROTATABLE:
        code, out = _cli("keys", "rotate", use, "--overlap-seconds", "3600", "--key-dir", str(store.key_dir),
                         "--database-url", database_url)
        assert code == 0, out
        assert f"{use} rotated" in out and old[use] in out
    code, out = _cli("keys", "list", "--key-dir", str(store.key_dir))
    assert code == 0, out
    lines = out.splitlines()
    for use in ROTATABLE:
        assert any(old[use] in ln and f"{use} (trusted in overlap)" in ln for ln in lines), out
        assert any(store.current(use).key_id in ln and f"{use} (current)" in ln for ln in lines), out
    code, out = _cli("keys", "end-overlap", "relay-ca", "--key-dir", str(store.key_dir),
                     "--database-url", database_url)
    assert code == 0 and old["relay-ca"] in out, out
    code, out = _cli("keys", "list", "--key-dir", str(store.key_dir))
    assert any(old["relay-ca"] in ln and "relay-ca (expired)" in ln for ln in out.splitlines()), out

    async def audited() -> list[dict[str, object]]:
        async with Database(database_url) as db:
            recs = [r for b in [b async for b in audit_store.iter_records(db)] for r in b]
        return [json.loads(r.entry) for r in recs if r.entry]

    entries = asyncio.run(audited())
    rotated = [e["details"] for e in entries if e["type"] == event_types.KEYS_ROTATED]
    assert sorted(d["use"] for d in rotated) == sorted(ROTATABLE)  # type: ignore[index]
    assert any(e["type"] == event_types.KEYS_OVERLAP_ENDED for e in entries)
