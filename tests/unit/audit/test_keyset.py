"""Key sets: a checkpoint is checked against the key it names, within that key's validity period."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from audit.chain import format_at
from audit.checkpoint import Checkpoint, FileSigner, Signer
from audit.keyset import AuditKeySet, KeyEntry, load_key_set
from printgate.errors import ConfigError

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _cp(signer: Signer, at: datetime, size: int = 3) -> Checkpoint:
    return signer.sign(tree_size=size, root=b"\x01" * 32, head="ab" * 32, at=format_at(at))


def test_each_checkpoint_is_checked_against_the_key_it_names() -> None:
    old, new = Signer.generate(), Signer.generate()
    keys = AuditKeySet([KeyEntry(old.verifier(), None, T0), KeyEntry(new.verifier(), T0, None)])
    assert keys.is_valid(_cp(old, T0 - timedelta(days=1)))
    assert keys.is_valid(_cp(new, T0 + timedelta(days=1)))
    after = keys.refusal(_cp(old, T0 + timedelta(seconds=1)))
    assert after is not None and "retired" in after and old.key_id in after
    before = keys.refusal(_cp(new, T0 - timedelta(seconds=1)))
    assert before is not None and "before key" in before
    stranger = Signer.generate()
    assert "not in the key set" in (keys.refusal(_cp(stranger, T0)) or "")


def test_a_checkpoint_claiming_another_keys_id_is_refused() -> None:
    old, new = Signer.generate(), Signer.generate()
    keys = AuditKeySet([KeyEntry(old.verifier()), KeyEntry(new.verifier())])
    cp = _cp(new, T0)
    forged = Checkpoint(cp.tree_size, cp.root, cp.head, cp.at, old.key_id, cp.signature)
    assert "does not verify" in (keys.refusal(forged) or "")


def test_key_set_file_round_trip_and_bad_files(tmp_path: Path) -> None:
    old, new = Signer.generate(), Signer.generate()
    keys = AuditKeySet([KeyEntry(old.verifier(), None, T0), KeyEntry(new.verifier(), T0, None)])
    keys.save(tmp_path / "set.json")
    again = load_key_set(tmp_path / "set.json")
    assert [(e.key_id, e.not_before, e.not_after) for e in again] == [
        (old.key_id, None, T0), (new.key_id, T0, None)]
    # a directory: the set plus a bare PEM of a third key
    third = Signer.generate()
    (tmp_path / "third.pem").write_text(third.public_key_pem())
    assert len(load_key_set(tmp_path)) == 3
    doc = json.loads((tmp_path / "set.json").read_text())
    doc["keys"][0]["key_id"] = new.key_id
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="does not match its public key"):
        load_key_set(tmp_path / "bad.json")
    doc["keys"][0]["key_id"] = old.key_id
    doc["keys"][0]["not_after"] = "yesterday"
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="RFC 3339"):
        load_key_set(tmp_path / "bad.json")


def test_file_signer_follows_a_swapped_key_file_and_never_predates_it(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    first = Signer.generate()
    first.save(path)
    swapped_at = T0 + timedelta(minutes=5)
    signer = FileSigner(path, clock=lambda: swapped_at)
    assert _cp(signer, T0).key_id == first.key_id
    second = Signer.generate()
    second.save(tmp_path / "k.new")
    (tmp_path / "k.new").replace(path)
    # a checkpoint whose time was read before the swap is dated at the swap, inside the new key's period
    cp = _cp(signer, T0 + timedelta(minutes=1))
    assert cp.key_id == second.key_id and cp.at == format_at(swapped_at)
    assert second.verifier().is_valid(cp)
    later = T0 + timedelta(hours=1)
    assert _cp(signer, later).at == format_at(later)
