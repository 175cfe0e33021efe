"""Signed agent updates: Ed25519 over a manifest, sha256 of the wheel, version monotonicity.

A release is ``<wheel>`` + ``manifest.json`` + ``manifest.json.sig``. The
manifest (canonical JSON: sorted keys, no spaces) names the package, version,
wheel file name, its sha256 and size. ``verify_update`` refuses anything not
signed by the release key, any hash or size mismatch, and any version that is
not strictly newer than the installed one. Installing (``pip install`` of the
verified wheel) is the caller's job; nothing here executes the package.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.errors import UpdateRejected

DOMAIN = b"printgate-update-v1\x00"
PACKAGE = "printgate"
_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


@dataclass(frozen=True, slots=True)
class UpdateManifest:
    package: str
    version: str
    wheel: str
    sha256: str
    size: int

    def canonical(self) -> bytes:
        return json.dumps({"package": self.package, "version": self.version, "wheel": self.wheel,
                           "sha256": self.sha256, "size": self.size},
                          sort_keys=True, separators=(",", ":")).encode()


def parse_version(text: str) -> tuple[int, int, int]:
    match = _VERSION.match(text)
    if match is None:
        raise UpdateRejected(f"version {text!r} is not MAJOR.MINOR.PATCH")
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch)


def sign_release(wheel: Path, version: str, key: Ed25519PrivateKey, out_dir: Path) -> Path:
    """Write ``manifest.json`` and its signature next to the release (release tooling)."""
    data = wheel.read_bytes()
    manifest = UpdateManifest(PACKAGE, version, wheel.name, hashlib.sha256(data).hexdigest(), len(data))
    path = out_dir / "manifest.json"
    path.write_bytes(manifest.canonical())
    (out_dir / "manifest.json.sig").write_bytes(key.sign(DOMAIN + manifest.canonical()))
    return path


def verify_update(release_dir: Path, *, release_key: bytes, installed_version: str) -> tuple[UpdateManifest, Path]:
    """The verified manifest and wheel path, or ``UpdateRejected`` saying why."""
    manifest_path, sig_path = release_dir / "manifest.json", release_dir / "manifest.json.sig"
    if not manifest_path.is_file() or not sig_path.is_file():
        raise UpdateRejected(f"{release_dir} has no manifest.json + manifest.json.sig: not a release")
    raw = manifest_path.read_bytes()
    try:
        Ed25519PublicKey.from_public_bytes(release_key).verify(sig_path.read_bytes(), DOMAIN + raw)
    except (InvalidSignature, ValueError) as exc:
        raise UpdateRejected("update manifest signature is invalid: refusing to install") from exc
    try:
        fields = json.loads(raw)
        manifest = UpdateManifest(str(fields["package"]), str(fields["version"]), str(fields["wheel"]),
                                  str(fields["sha256"]), int(fields["size"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise UpdateRejected("update manifest is malformed") from exc
    if manifest.package != PACKAGE:
        raise UpdateRejected(f"update is for {manifest.package!r}, not {PACKAGE!r}")
    if parse_version(manifest.version) <= parse_version(installed_version):
        raise UpdateRejected(f"update {manifest.version} is not newer than installed "
                             f"{installed_version}: downgrades and re-installs are refused")
    if "/" in manifest.wheel or "\\" in manifest.wheel or manifest.wheel.startswith("."):
        raise UpdateRejected("update manifest names a wheel outside the release directory")
    wheel = release_dir / manifest.wheel
    if not wheel.is_file():
        raise UpdateRejected(f"release wheel {manifest.wheel} is missing")
    data = wheel.read_bytes()
    if len(data) != manifest.size or hashlib.sha256(data).hexdigest() != manifest.sha256:
        raise UpdateRejected(f"release wheel {manifest.wheel} does not match the signed sha256: "
                             "it was altered after signing")
    return manifest, wheel
