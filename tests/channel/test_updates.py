"""Signed updates: tampered packages, forged manifests and downgrades are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.errors import UpdateRejected
from agent.updates import sign_release, verify_update
from printgate.wire.commands import raw_public_key

KEY = Ed25519PrivateKey.generate()
PUB = raw_public_key(KEY.public_key())


def release(tmp: Path, version: str = "0.2.0", key: Ed25519PrivateKey = KEY) -> Path:
    wheel = tmp / f"printgate-{version}-py3-none-any.whl"
    wheel.write_bytes(b"PK\x03\x04 pretend wheel " + version.encode())
    sign_release(wheel, version, key, tmp)
    return tmp


def test_signed_newer_release_is_accepted(tmp_path: Path) -> None:
    manifest, wheel = verify_update(release(tmp_path), release_key=PUB, installed_version="0.1.0")
    assert manifest.version == "0.2.0" and wheel.is_file()


def test_tampered_wheel_is_refused(tmp_path: Path) -> None:
    d = release(tmp_path)
    wheel = next(d.glob("*.whl"))
    wheel.write_bytes(wheel.read_bytes().replace(b"pretend", b"malware"))
    with pytest.raises(UpdateRejected, match="altered after signing"):
        verify_update(d, release_key=PUB, installed_version="0.1.0")


def test_manifest_edited_after_signing_is_refused(tmp_path: Path) -> None:
    d = release(tmp_path)
    fields = json.loads((d / "manifest.json").read_text())
    fields["version"] = "9.9.9"
    (d / "manifest.json").write_text(json.dumps(fields, sort_keys=True, separators=(",", ":")))
    with pytest.raises(UpdateRejected, match="signature is invalid"):
        verify_update(d, release_key=PUB, installed_version="0.1.0")


def test_release_signed_by_another_key_is_refused(tmp_path: Path) -> None:
    d = release(tmp_path, key=Ed25519PrivateKey.generate())
    with pytest.raises(UpdateRejected, match="signature is invalid"):
        verify_update(d, release_key=PUB, installed_version="0.1.0")


def test_downgrade_and_reinstall_are_refused(tmp_path: Path) -> None:
    d = release(tmp_path, version="0.1.5")
    with pytest.raises(UpdateRejected, match="not newer"):
        verify_update(d, release_key=PUB, installed_version="0.2.0")
    with pytest.raises(UpdateRejected, match="not newer"):
        verify_update(d, release_key=PUB, installed_version="0.1.5")


def test_cli_update_refuses_a_downgrade_with_a_clear_error(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from printgate.cli import app

    d = release(tmp_path, version="0.0.9")
    result = CliRunner().invoke(app, ["agent", "update", str(d), "--release-key", PUB.hex(), "--dry-run"])
    assert result.exit_code == 2
    assert "not newer" in result.output
