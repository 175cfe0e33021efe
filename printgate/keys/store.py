"""One key directory for the gateway's shared keys, behind a KMS-style interface.

``FileKeyStore(key_dir)`` keeps each key where the gateway always kept it (so an
existing data directory is a key directory as it is) and records every key it
ever rotated, with its validity, in ``<key_dir>/keys.json``:

=================  =====================================  ==========================================
use                current key (private, 0600)            what trusts it
=================  =====================================  ==========================================
relay-ca           ``relay_ssh_ca`` (OpenSSH Ed25519)     the relay: session certificates it signed
relay-host-key     ``relay_host_key`` (OpenSSH Ed25519)   agents: the relay's host key fingerprint
command-signing    ``agent-ca/command-signing.key``       agents: signed commands and trust sets
session-ca         ``dwa-ca/mitmproxy-ca.pem``            browsers: https session hosts
=================  =====================================  ==========================================

(The audit signing key and the agent CA sit in the same directory and rotate
with their own commands: ``audit/keyset.py``, ``gateway/channel/ca.py``.)

``rotate(use, overlap)`` makes a new current key and keeps the old one trusted
until ``now + overlap`` (its ``not_after``); retired command-signing private
keys are kept in ``retired/`` until then, because the gateway signs the agents'
trust sets with the oldest key they may still trust. Readers notice a rotation
by ``version()`` (file times), so a running node follows without a restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, Protocol, get_args

from printgate.errors import ConfigError

KeyUse = Literal["relay-ca", "relay-host-key", "command-signing", "session-ca"]
ROTATABLE: tuple[KeyUse, ...] = get_args(KeyUse)
KEY_FILES: dict[KeyUse, str] = {
    "relay-ca": "relay_ssh_ca",
    "relay-host-key": "relay_host_key",
    "command-signing": "agent-ca/command-signing.key",
    "session-ca": "dwa-ca/mitmproxy-ca.pem",
}
MANIFEST_FILE = "keys.json"
RETIRED_DIR = "retired"
SESSION_CA_BUNDLE = "dwa-ca/trusted-cas.pem"  # every session CA browsers should trust now
MANIFEST_VERSION = 1


def _at(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_at(value: object, where: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        raise ConfigError(f"{where}: {value!r} is not a time like 2026-01-31T12:00:00.000000Z") from None


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One key's public facts: id, use, validity, and whether it is the current (issuing/signing) one."""

    use: KeyUse
    key_id: str
    public: str  # OpenSSH public key line, raw Ed25519 hex (command-signing) or certificate PEM (session-ca)
    fingerprint: str = ""  # OpenSSH SHA256:... (relay keys)
    not_before: datetime | None = None
    not_after: datetime | None = None
    current: bool = False
    private_file: str | None = None  # relative to the key directory, when the private key is kept

    def valid_at(self, at: datetime) -> bool:
        return ((self.not_before is None or self.not_before <= at)
                and (self.not_after is None or at <= self.not_after))

    def validity(self) -> str:
        return f"{_at(self.not_before) or '-'} .. {_at(self.not_after) or '-'}"

    def to_json(self) -> dict[str, object]:
        return {"use": self.use, "key_id": self.key_id, "public": self.public, "fingerprint": self.fingerprint,
                "not_before": _at(self.not_before), "not_after": _at(self.not_after),
                "private_file": self.private_file}

    @classmethod
    def from_json(cls, data: object, where: str) -> KeyRecord:
        if not isinstance(data, dict) or data.get("use") not in ROTATABLE or not isinstance(data.get("key_id"), str):
            raise ConfigError(f"{where}: each key needs a use ({', '.join(ROTATABLE)}) and a key_id")
        return cls(use=data["use"], key_id=data["key_id"], public=str(data.get("public", "")),
                   fingerprint=str(data.get("fingerprint", "")),
                   not_before=_parse_at(data.get("not_before"), f"{where} not_before"),
                   not_after=_parse_at(data.get("not_after"), f"{where} not_after"),
                   private_file=data.get("private_file") if isinstance(data.get("private_file"), str) else None)


@dataclass(frozen=True, slots=True)
class Rotation:
    old: KeyRecord
    new: KeyRecord


class KeyStore(Protocol):
    """What a node needs from wherever its keys live (a directory here; a KMS could implement it)."""

    def ensure(self, use: KeyUse) -> KeyRecord: ...

    def current(self, use: KeyUse) -> KeyRecord: ...

    def private_key(self, use: KeyUse, key_id: str | None = None) -> bytes: ...

    def trusted(self, use: KeyUse, at: datetime | None = None) -> list[KeyRecord]: ...

    def records(self) -> list[KeyRecord]: ...

    def rotate(self, use: KeyUse, *, overlap: timedelta, now: datetime | None = None) -> Rotation: ...

    def version(self) -> object: ...


# ---------------------------------------------------------------------------- key kinds
def _ssh_record(use: KeyUse, private: bytes) -> KeyRecord:
    import asyncssh

    try:
        key = asyncssh.import_private_key(private)
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise ConfigError(f"the {use} key is not an OpenSSH private key ({exc}); fix or delete the file") from None
    return KeyRecord(use, hashlib.sha256(key.public_data).hexdigest()[:16],
                     key.export_public_key("openssh").decode().split(" ")[0] + " "
                     + key.export_public_key("openssh").decode().split(" ")[1].strip(),
                     fingerprint=str(key.get_fingerprint("sha256")))


def _command_record(private: bytes) -> KeyRecord:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from printgate.wire.commands import key_id, raw_public_key

    key = serialization.load_pem_private_key(private, None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError("the command-signing key is not an Ed25519 key")
    raw = raw_public_key(key.public_key())
    return KeyRecord("command-signing", key_id(raw), raw.hex())


def _session_ca_record(private: bytes) -> KeyRecord:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(private)
    except ValueError as exc:
        raise ConfigError(f"the session CA file holds no certificate ({exc})") from None
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return KeyRecord("session-ca", hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()[:16],
                     pem)


def record_of(use: KeyUse, private: bytes) -> KeyRecord:
    if use in ("relay-ca", "relay-host-key"):
        return _ssh_record(use, private)
    if use == "command-signing":
        return _command_record(private)
    return _session_ca_record(private)


def generate(use: KeyUse) -> bytes:
    """A new private key for ``use`` in the format its file holds."""
    if use in ("relay-ca", "relay-host-key"):
        import asyncssh

        return bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key("openssh"))
    if use == "command-signing":
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    import tempfile

    from mitmproxy.certs import CertStore

    with tempfile.TemporaryDirectory(prefix="printgate-session-ca-") as tmp:  # mitmproxy's own CA format
        CertStore.create_store(Path(tmp), "mitmproxy", 2048, organization="printgate",
                               cn="printgate DWA session CA")
        return (Path(tmp) / "mitmproxy-ca.pem").read_bytes()


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` 0600 next to ``path`` and rename it over ``path`` (readers see old or new, whole)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ---------------------------------------------------------------------------- the file backend
class FileKeyStore:
    """The keys of ``key_dir`` (``[gateway] key_dir``; the data directory unless set)."""

    def __init__(self, key_dir: Path) -> None:
        self.key_dir = key_dir

    def path(self, use: KeyUse) -> Path:
        return self.key_dir / KEY_FILES[use]

    # -- reading
    def _manifest(self) -> list[KeyRecord]:
        path = self.key_dir / MANIFEST_FILE
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the key list {path}: {exc}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
            raise ConfigError(f"{path}: a key list is {{\"v\": 1, \"keys\": [...]}}")
        return [KeyRecord.from_json(k, f"{path} key {i + 1}") for i, k in enumerate(doc["keys"])]

    def _save_manifest(self, records: list[KeyRecord]) -> None:
        path = self.key_dir / MANIFEST_FILE
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        doc = {"v": MANIFEST_VERSION, "keys": [r.to_json() for r in records]}
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        os.replace(tmp, path)

    def ensure(self, use: KeyUse) -> KeyRecord:
        """The current key of ``use``, created (0600) when the directory has none yet."""
        path = self.path(use)
        if not path.exists():
            data = generate(use)
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:  # O_EXCL: two nodes starting at once on a shared directory keep one key
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                if use == "session-ca":  # the certificate alone, as mitmproxy's own store keeps it
                    (path.parent / "mitmproxy-ca-cert.pem").write_text(record_of(use, data).public)
        return self.current(use)

    def current(self, use: KeyUse) -> KeyRecord:
        path = self.path(use)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"no {use} key at {path} ({exc.strerror}): the gateway creates it on first "
                              "start; on another node, mount the shared key directory ([gateway] key_dir)") from None
        rec = record_of(use, data)
        listed = next((r for r in self._manifest() if r.use == use and r.key_id == rec.key_id), None)
        return replace(rec, current=True, private_file=KEY_FILES[use],
                       not_before=listed.not_before if listed else None,
                       not_after=listed.not_after if listed else None)

    def private_key(self, use: KeyUse, key_id: str | None = None) -> bytes:
        """The private key of ``use``: the current one, or a retired one still kept (``key_id``)."""
        cur = self.current(use)
        if key_id is None or key_id == cur.key_id:
            return self.path(use).read_bytes()
        rec = next((r for r in self._manifest() if r.use == use and r.key_id == key_id), None)
        if rec is None or rec.private_file is None:
            raise ConfigError(f"the key directory {self.key_dir} keeps no private {use} key {key_id}")
        return (self.key_dir / rec.private_file).read_bytes()

    def records(self) -> list[KeyRecord]:
        """Every key of every use, current and retired, oldest first within a use."""
        out: list[KeyRecord] = []
        listed = self._manifest()
        for use in ROTATABLE:
            cur = self.current(use) if self.path(use).exists() else None
            mine = [r for r in listed if r.use == use and (cur is None or r.key_id != cur.key_id)]
            out += sorted(mine, key=lambda r: _at(r.not_before) or "") + ([cur] if cur else [])
        return out

    def trusted(self, use: KeyUse, at: datetime | None = None) -> list[KeyRecord]:
        """The keys of ``use`` valid at ``at`` (now): the current one first, then retired ones in overlap."""
        when = at or datetime.now(UTC)
        cur = self.current(use)
        return [cur] + [r for r in self._manifest()
                        if r.use == use and r.key_id != cur.key_id and r.valid_at(when)]

    def version(self) -> object:
        """Changes whenever a key or the key list changes (cheap: a few stat calls)."""
        out: list[tuple[int, int, int] | None] = []
        for p in [self.key_dir / MANIFEST_FILE, *(self.path(u) for u in ROTATABLE)]:
            try:
                st = p.stat()
                out.append((st.st_mtime_ns, st.st_ino, st.st_size))
            except OSError:
                out.append(None)
        return tuple(out)

    # -- rotating
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.key_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.key_dir / ".keys.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def rotate(self, use: KeyUse, *, overlap: timedelta, now: datetime | None = None) -> Rotation:
        """New current key for ``use``; the old one stays trusted until ``now + overlap``."""
        if overlap < timedelta(0):
            raise ConfigError("the overlap cannot be negative")
        with self._locked():
            at = now or datetime.now(UTC)
            old = self.current(use)
            if old.not_after is not None:
                raise ConfigError(f"the current {use} key {old.key_id} is already retired; the key list is "
                                  f"inconsistent with {self.path(use)}")
            data = generate(use)
            new = replace(record_of(use, data), current=True, not_before=at, private_file=KEY_FILES[use])
            kept: str | None = None
            if use == "command-signing":  # signs trust sets for agents that know only the old key
                kept = f"{RETIRED_DIR}/{use}-{old.key_id}.key"
                write_private(self.key_dir / kept, self.path(use).read_bytes())
            retired = replace(old, current=False, not_after=at + overlap, private_file=kept)
            others = [self._drop_expired_private(r, at) for r in self._manifest()
                      if not (r.use == use and r.key_id in (old.key_id, new.key_id))]
            # the list first (both keys trusted), then the key file: a reader never misses the new key
            self._save_manifest([*others, retired, replace(new, current=False, private_file=None)])
            if use == "session-ca":
                self._replace_session_ca(data)
            else:
                write_private(self.path(use), data)
            self._save_manifest([*others, retired, replace(new, current=False, private_file=None)])
            if use == "session-ca":
                self.write_session_ca_bundle(at)
            return Rotation(retired, new)

    def _drop_expired_private(self, r: KeyRecord, at: datetime) -> KeyRecord:
        """A retired key past its overlap needs no private key any more: delete the kept copy."""
        if r.private_file is None or r.not_after is None or r.not_after >= at:
            return r
        (self.key_dir / r.private_file).unlink(missing_ok=True)
        return replace(r, private_file=None)

    def end_overlap(self, use: KeyUse, now: datetime | None = None) -> list[KeyRecord]:
        """Stop trusting the retired keys of ``use`` now (every node and agent follows the new key already)."""
        at = now or datetime.now(UTC)
        with self._locked():
            listed = self._manifest()
            cur = self.current(use).key_id
            ended = [r for r in listed if r.use == use and r.key_id != cur and r.valid_at(at)]
            self._save_manifest([replace(r, not_after=at) if r in ended else r for r in listed])
            if use == "session-ca":
                self.write_session_ca_bundle(at)
            return [replace(r, not_after=at) for r in ended]

    def prune(self, now: datetime | None = None) -> list[KeyRecord]:
        """Forget retired keys whose overlap ended (and delete their kept private keys)."""
        at = now or datetime.now(UTC)
        with self._locked():
            listed = self._manifest()
            gone = [r for r in listed if r.not_after is not None and r.not_after < at]
            for r in gone:
                if r.private_file:
                    (self.key_dir / r.private_file).unlink(missing_ok=True)
            self._save_manifest([r for r in listed if r not in gone])
            return gone

    def _replace_session_ca(self, data: bytes) -> None:
        """mitmproxy's CA files in ``dwa-ca/`` for the new CA (key + certificate, certificate alone)."""
        confdir = self.path("session-ca").parent
        old = self.path("session-ca")
        if old.exists():
            rec = record_of("session-ca", old.read_bytes())
            write_private(self.key_dir / RETIRED_DIR / f"session-ca-{rec.key_id}.pem", old.read_bytes())
        for stale in ("mitmproxy-ca.p12", "mitmproxy-ca-cert.p12", "mitmproxy-ca-cert.cer"):
            (confdir / stale).unlink(missing_ok=True)  # mitmproxy rewrites them from the new CA
        cert = record_of("session-ca", data).public
        (confdir / "mitmproxy-ca-cert.pem").write_text(cert)
        write_private(self.path("session-ca"), data)

    def write_session_ca_bundle(self, at: datetime | None = None) -> Path:
        """``dwa-ca/trusted-cas.pem``: the session CAs browsers should trust now (current and in overlap)."""
        path = self.key_dir / SESSION_CA_BUNDLE
        path.write_text("".join(r.public for r in self.trusted("session-ca", at)))
        return path
