"""The agent trust set: which command-signing keys and relay host keys an agent trusts, and until when.

Pure (no I/O, no clock): the gateway builds the document from its key store
(``printgate.keys``) and sends it as a ``TrustSet`` command; the agent
(``agent/trust.py``) verifies the command's signature with a key it already
trusts, parses the document with ``parse_trust_set`` and keeps it. Times are
milliseconds since the epoch (UTC); ``None`` is "no limit".

Document (``TrustSet.set_json``, UTF-8 JSON)::

    {"v": 1, "serial_ms": 1770000000000,
     "command_keys": [{"key_id": "…", "public": "<64 hex: raw Ed25519>", "not_before_ms": …|null,
                       "not_after_ms": …|null}],
     "relay_host_keys": [{"fingerprint": "SHA256:…", "not_before_ms": …|null, "not_after_ms": …|null}]}
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

TRUST_SET_VERSION = 1


class TrustSetInvalid(ValueError):
    """The document is not a trust set this agent can use (the message says why)."""


def command_key_id(public_raw: bytes) -> str:
    """Same id as ``printgate.wire.commands.key_id`` (kept here so the agent need not load cryptography)."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Validity:
    not_before_ms: int | None = None
    not_after_ms: int | None = None

    def covers(self, at_ms: int) -> bool:
        return ((self.not_before_ms is None or self.not_before_ms <= at_ms)
                and (self.not_after_ms is None or at_ms <= self.not_after_ms))


@dataclass(frozen=True, slots=True)
class TrustedCommandKey:
    public_raw: bytes
    validity: Validity = Validity()

    @property
    def key_id(self) -> str:
        return command_key_id(self.public_raw)


@dataclass(frozen=True, slots=True)
class TrustedHostKey:
    fingerprint: str  # OpenSSH "SHA256:..." form
    validity: Validity = Validity()


@dataclass(frozen=True, slots=True)
class TrustSetDoc:
    serial_ms: int
    command_keys: tuple[TrustedCommandKey, ...]
    relay_host_keys: tuple[TrustedHostKey, ...]

    def command_key(self, key_id: str, at_ms: int) -> TrustedCommandKey | None:
        """The command key ``key_id`` if it is trusted at ``at_ms``."""
        for k in self.command_keys:
            if k.key_id == key_id and k.validity.covers(at_ms):
                return k
        return None

    def host_fingerprints(self, at_ms: int) -> list[str]:
        return [h.fingerprint for h in self.relay_host_keys if h.validity.covers(at_ms)]

    def to_json(self) -> dict[str, object]:
        return {
            "v": TRUST_SET_VERSION, "serial_ms": self.serial_ms,
            "command_keys": [{"key_id": k.key_id, "public": k.public_raw.hex(),
                              "not_before_ms": k.validity.not_before_ms,
                              "not_after_ms": k.validity.not_after_ms} for k in self.command_keys],
            "relay_host_keys": [{"fingerprint": h.fingerprint, "not_before_ms": h.validity.not_before_ms,
                                 "not_after_ms": h.validity.not_after_ms} for h in self.relay_host_keys],
        }

    def encode(self) -> bytes:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode()


def _ms(value: object, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TrustSetInvalid(f"{what} must be milliseconds since the epoch or null, not {value!r}")
    return value


def _validity(item: dict[str, object], what: str) -> Validity:
    v = Validity(_ms(item.get("not_before_ms"), f"{what} not_before_ms"),
                 _ms(item.get("not_after_ms"), f"{what} not_after_ms"))
    if v.not_before_ms is not None and v.not_after_ms is not None and v.not_after_ms < v.not_before_ms:
        raise TrustSetInvalid(f"{what} ends before it starts")
    return v


def parse_trust_set(data: bytes) -> TrustSetDoc:
    """The trust set in ``data``; ``TrustSetInvalid`` when it is not one (nothing is half-applied)."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TrustSetInvalid(f"the trust set is not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("v") != TRUST_SET_VERSION:
        raise TrustSetInvalid(f"the trust set is not version {TRUST_SET_VERSION}")
    serial = _ms(doc.get("serial_ms"), "serial_ms")
    cmd_raw, host_raw = doc.get("command_keys"), doc.get("relay_host_keys")
    if serial is None or not isinstance(cmd_raw, list) or not isinstance(host_raw, list):
        raise TrustSetInvalid("the trust set needs serial_ms, command_keys and relay_host_keys")
    commands: list[TrustedCommandKey] = []
    for i, item in enumerate(cmd_raw):
        what = f"command key {i + 1}"
        if not isinstance(item, dict) or not isinstance(item.get("public"), str):
            raise TrustSetInvalid(f"{what} needs a public key (hex)")
        try:
            raw = bytes.fromhex(str(item["public"]))
        except ValueError:
            raise TrustSetInvalid(f"{what}: public is not hex") from None
        if len(raw) != 32:
            raise TrustSetInvalid(f"{what}: an Ed25519 public key has 32 bytes, not {len(raw)}")
        key = TrustedCommandKey(raw, _validity(item, what))
        if item.get("key_id") not in (None, key.key_id):
            raise TrustSetInvalid(f"{what}: key_id {item.get('key_id')} does not match its public key")
        commands.append(key)
    hosts: list[TrustedHostKey] = []
    for i, item in enumerate(host_raw):
        what = f"relay host key {i + 1}"
        fp = item.get("fingerprint") if isinstance(item, dict) else None
        if not isinstance(fp, str) or not fp.startswith("SHA256:") or len(fp) > 100:
            raise TrustSetInvalid(f"{what} needs an OpenSSH fingerprint (SHA256:...)")
        assert isinstance(item, dict)
        hosts.append(TrustedHostKey(fp, _validity(item, what)))
    if not commands:
        raise TrustSetInvalid("the trust set names no command key: the agent would refuse every command")
    return TrustSetDoc(serial, tuple(commands), tuple(hosts))
