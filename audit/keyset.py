"""Audit key sets: every checkpoint public key a gateway ever used, each with its validity period.

A checkpoint names the key that signed it (``key_id``, the first 16 hex digits
of SHA-256 over the raw public key). A key set maps key ids to public keys and
the period ``[not_before, not_after]`` during which the key may sign: a
checkpoint whose ``at`` lies outside its key's period is refused, so a signing
key retired by ``printgate keys rotate audit`` cannot sign history later
without the verifier noticing (a stolen retired key could still backdate ``at``;
witnesses' cosignatures, made when the checkpoint was fresh, catch that).

File format (``<data_dir>/audit-keys.json``, written by the gateway and by
``printgate keys rotate audit``)::

    {"v": 1, "keys": [{"key_id": "…", "use": "audit", "public_key": "-----BEGIN PUBLIC KEY-----…",
                       "not_before": "2026-01-01T00:00:00.000000Z" | null,
                       "not_after": "2026-06-01T00:00:00.000000Z" | null}]}

``load_key_set`` also reads a single PEM public key (valid without limits: the
single configured key of older set-ups) or a directory holding such files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from audit.chain import format_at, parse_at
from audit.checkpoint import Checkpoint, CheckpointVerifier, FileSigner, Signer
from printgate.errors import ConfigError

KEY_SET_VERSION = 1
KEY_SET_FILE = "audit-keys.json"
SIGNING_KEY_FILE = "audit-signing.key"
PUBLIC_KEY_FILE = "audit-public.pem"
AUDIT_USE = "audit"


def _parse(text: object, what: str) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_at(str(text))
    except ValueError as exc:
        raise ConfigError(f"{what} {text!r} is not an RFC 3339 UTC time like 2026-01-31T12:00:00.000000Z") from exc


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One public key of a key set, with the period it may sign in."""

    verifier: CheckpointVerifier
    not_before: datetime | None = None
    not_after: datetime | None = None
    use: str = AUDIT_USE

    @property
    def key_id(self) -> str:
        return self.verifier.key_id

    def validity(self) -> str:
        nb = format_at(self.not_before) if self.not_before else "-"
        na = format_at(self.not_after) if self.not_after else "-"
        return f"{nb} .. {na}"

    def to_json(self) -> dict[str, object]:
        return {
            "key_id": self.key_id, "use": self.use, "public_key": self.verifier.public_key_pem(),
            "not_before": format_at(self.not_before) if self.not_before else None,
            "not_after": format_at(self.not_after) if self.not_after else None,
        }

    @classmethod
    def from_json(cls, data: object, where: str) -> KeyEntry:
        if not isinstance(data, dict) or not isinstance(data.get("public_key"), str):
            raise ConfigError(f"{where}: each key needs a \"public_key\" (PEM)")
        verifier = CheckpointVerifier.from_pem(data["public_key"])
        claimed = data.get("key_id")
        if claimed is not None and claimed != verifier.key_id:
            raise ConfigError(f"{where}: key_id {claimed} does not match its public key (id {verifier.key_id})")
        nb = _parse(data.get("not_before"), f"{where}: not_before")
        na = _parse(data.get("not_after"), f"{where}: not_after")
        if nb is not None and na is not None and na < nb:
            raise ConfigError(f"{where}: key {verifier.key_id} has not_after before not_before")
        return cls(verifier, nb, na, str(data.get("use", AUDIT_USE)))


class AuditKeySet:
    """Checks checkpoint signatures against the key the checkpoint names, within its validity period."""

    def __init__(self, entries: Iterable[KeyEntry]) -> None:
        self._by_id: dict[str, KeyEntry] = {}
        for e in entries:
            if e.use != AUDIT_USE:
                continue
            if e.key_id in self._by_id:
                raise ConfigError(f"key {e.key_id} appears twice in the key set")
            self._by_id[e.key_id] = e
        if not self._by_id:
            raise ConfigError("the key set holds no audit public key")

    def __iter__(self) -> Iterator[KeyEntry]:
        return iter(self.ordered())

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, key_id: str) -> KeyEntry | None:
        return self._by_id.get(key_id)

    @property
    def key_id(self) -> str:
        """The ids of every key, for messages (``a|b|c``)."""
        return "|".join(sorted(self._by_id))

    @classmethod
    def single(cls, verifier: CheckpointVerifier) -> AuditKeySet:
        return cls([KeyEntry(verifier)])

    def refusal(self, cp: Checkpoint) -> str | None:
        """Why ``cp`` is not validly signed by this key set, or None when it is."""
        entry = self._by_id.get(cp.key_id)
        if entry is None:
            if not cp.key_id and len(self._by_id) == 1:  # a checkpoint naming no key: the single configured one
                entry = next(iter(self._by_id.values()))
                if entry.verifier.signature_ok(cp):
                    return None
            return f"it names key {cp.key_id or '(none)'}, which is not in the key set ({self.key_id})"
        if not entry.verifier.signature_ok(cp):
            return f"its signature does not verify with key {cp.key_id}"
        try:
            at = parse_at(cp.at)
        except ValueError:
            return f"its time {cp.at!r} is not an RFC 3339 UTC time"
        if entry.not_before is not None and at < entry.not_before:
            return (f"it was signed at {cp.at}, before key {cp.key_id} became valid "
                    f"({format_at(entry.not_before)})")
        if entry.not_after is not None and at > entry.not_after:
            return (f"it was signed at {cp.at}, after key {cp.key_id} was retired "
                    f"({format_at(entry.not_after)})")
        return None

    def is_valid(self, cp: Checkpoint) -> bool:
        return self.refusal(cp) is None

    def to_json(self) -> dict[str, object]:
        return {"v": KEY_SET_VERSION, "keys": [e.to_json() for e in self.ordered()]}

    def ordered(self) -> list[KeyEntry]:
        """Entries oldest first (by not_before; keys valid since ever first)."""
        return sorted(self._by_id.values(), key=lambda e: (e.not_before is not None,
                                                           format_at(e.not_before) if e.not_before else "",
                                                           e.key_id))

    def with_entry(self, entry: KeyEntry) -> AuditKeySet:
        return AuditKeySet([*(e for e in self._by_id.values() if e.key_id != entry.key_id), entry])

    def retire(self, key_id: str, at: datetime) -> AuditKeySet:
        entry = self._by_id[key_id]
        return self.with_entry(replace(entry, not_after=at))

    def save(self, path: Path | str) -> None:
        """Write atomically (a reader sees the old or the new set, never half of one)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        os.replace(tmp, p)


def _load_file(path: Path) -> list[KeyEntry]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read key set {path}: {exc}") from exc
    if data.lstrip().startswith(b"-----BEGIN"):
        return [KeyEntry(CheckpointVerifier.from_pem(data))]
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise ConfigError(f"{path} is neither a PEM public key nor a JSON key set: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise ConfigError(f"{path}: a key set is {{\"v\": 1, \"keys\": [...]}}")
    return [KeyEntry.from_json(k, f"{path} key {i + 1}") for i, k in enumerate(doc["keys"])]


def load_key_set(path: Path | str) -> AuditKeySet:
    """A key set from a JSON key set file, a PEM public key, or a directory of those (*.json, *.pem, *.pub)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix in (".json", ".pem", ".pub"))
        if not files:
            raise ConfigError(f"{p} holds no key set (*.json) or public key (*.pem, *.pub)")
        entries: dict[str, KeyEntry] = {}
        for f in files:
            for e in _load_file(f):
                old = entries.get(e.key_id)
                # the same key in a set file and as a bare PEM: the set's validity period wins
                if old is None or (old.not_before is None and old.not_after is None):
                    entries[e.key_id] = e
        return AuditKeySet(entries.values())
    return AuditKeySet(_load_file(p))


def open_gateway_signer(data_dir: Path) -> FileSigner:
    """The gateway's audit signer from ``<data_dir>/audit-signing.key`` (created 0600 on first start).

    Keeps ``audit-public.pem`` and the key set ``audit-keys.json`` in step: a
    signing key missing from the key set (first start, or a set-up from before
    key sets) is added, valid from now, or without a start when no set exists yet
    (its older checkpoints must keep verifying).
    """
    key_path, set_path = data_dir / SIGNING_KEY_FILE, data_dir / KEY_SET_FILE
    if not key_path.is_file():
        Signer.generate().save(key_path)
    signer = FileSigner(key_path)
    (data_dir / PUBLIC_KEY_FILE).write_text(signer.public_key_pem())
    if not set_path.exists():
        AuditKeySet.single(signer.verifier()).save(set_path)
        return signer
    keys = load_key_set(set_path)
    entry = keys.get(signer.key_id)
    if entry is None:
        keys.with_entry(KeyEntry(signer.verifier(), not_before=datetime.now(UTC))).save(set_path)
    elif entry.not_after is not None:
        raise ConfigError(f"the audit signing key {signer.key_id} in {key_path} was retired at "
                          f"{format_at(entry.not_after)} ({set_path}): put back the key that replaced it "
                          "(`printgate keys list`)")
    return signer


# ---------------------------------------------------------------------------- key handovers (witnesses)
HANDOVER_VERSION = 1
HANDOVER_DOMAIN = b"printgate-audit-key-handover-v1\n"
HANDOVER_GLOB = "audit-handover-*.json"


@dataclass(frozen=True, slots=True)
class KeyHandover:
    """"Key ``old_key_id`` hands over to this new public key at ``at``", signed by the old key.

    ``printgate keys rotate audit`` writes one (``<key_dir>/audit-handover-<old>-<new>.json``)
    before the old private key is destroyed. A witness pinning the old key follows it to the new
    key without a trusted path for the new public key: the file authenticates itself.
    """

    old_key_id: str
    new_public_key: str  # PEM
    at: str
    signature: str  # hex Ed25519 over HANDOVER_DOMAIN + canonical JSON of body()

    @property
    def new_key_id(self) -> str:
        return CheckpointVerifier.from_pem(self.new_public_key).key_id

    def body(self) -> dict[str, object]:
        return {"v": HANDOVER_VERSION, "old_key_id": self.old_key_id, "new_key_id": self.new_key_id,
                "new_public_key": self.new_public_key, "at": self.at}

    def signed_bytes(self) -> bytes:
        from audit.canonical import canonical_bytes

        return HANDOVER_DOMAIN + canonical_bytes(self.body())

    def to_json(self) -> dict[str, object]:
        return {**self.body(), "signature": self.signature}

    @classmethod
    def from_json(cls, data: object, where: str) -> KeyHandover:
        if not isinstance(data, dict) or data.get("v") != HANDOVER_VERSION:
            raise ConfigError(f"{where} is not a key handover (v {HANDOVER_VERSION})")
        try:
            h = cls(str(data["old_key_id"]), str(data["new_public_key"]), str(data["at"]), str(data["signature"]))
        except KeyError as exc:
            raise ConfigError(f"{where}: a key handover needs {exc}") from None
        if data.get("new_key_id") not in (None, h.new_key_id):
            raise ConfigError(f"{where}: new_key_id does not match the new public key")
        return h

    def verified_by(self, old: CheckpointVerifier) -> CheckpointVerifier | None:
        """The new key if ``old`` signed this handover; None otherwise."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        if old.key_id != self.old_key_id:
            return None
        public = load_pem_public_key(old.public_key_pem().encode())
        assert isinstance(public, Ed25519PublicKey)
        try:
            public.verify(bytes.fromhex(self.signature), self.signed_bytes())
        except (InvalidSignature, ValueError):
            return None
        return CheckpointVerifier.from_pem(self.new_public_key)


def sign_handover(old_key_path: Path, new: CheckpointVerifier, at: datetime) -> KeyHandover:
    """The old signing key (its file, before it is replaced) hands over to ``new``."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(old_key_path.read_bytes(), None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{old_key_path} is not an Ed25519 private key")
    old_id = Signer.load(old_key_path).key_id
    unsigned = KeyHandover(old_id, new.public_key_pem(), format_at(at), "")
    return replace(unsigned, signature=key.sign(unsigned.signed_bytes()).hex())


def save_handover(h: KeyHandover, directory: Path) -> Path:
    path = directory / f"audit-handover-{h.old_key_id}-{h.new_key_id}.json"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(h.to_json(), indent=2) + "\n")
    os.replace(tmp, path)
    return path


def follow_handovers(trusted: CheckpointVerifier, where: Path, target_key_id: str) -> CheckpointVerifier | None:
    """The key ``target_key_id`` reached from ``trusted`` through handovers in ``where`` (a directory of
    ``audit-handover-*.json`` or one file), each signed by the key before it; None if there is no such chain."""
    files = sorted(where.glob(HANDOVER_GLOB)) if where.is_dir() else [where]
    handovers: list[KeyHandover] = []
    for f in files:
        try:
            handovers.append(KeyHandover.from_json(json.loads(f.read_text()), str(f)))
        except (OSError, ValueError, ConfigError):
            continue  # unreadable or not a handover: it cannot extend the chain
    def walk(current: CheckpointVerifier, seen: frozenset[str]) -> CheckpointVerifier | None:
        if current.key_id == target_key_id:
            return current
        for h in handovers:  # every branch: a forged second handover of one key cannot hide the real one
            nxt = h.verified_by(current)
            if nxt is not None and nxt.key_id not in seen and (found := walk(nxt, seen | {nxt.key_id})):
                return found
        return None

    return walk(trusted, frozenset({trusted.key_id}))
