"""The agents' trust set from the key store, and the key that signs it.

Agents trust command-signing keys and relay host keys. After a rotation the
gateway sends every agent the set of keys valid now (current and retired ones
still in their overlap), signed with the OLDEST command-signing key still
valid: an agent that knows only the key from before the rotation can check
it, and from then on trusts the new key too.
"""

from __future__ import annotations

from datetime import UTC, datetime

from printgate.keys.store import KeyRecord, KeyStore
from printgate.wire.trust_set import TrustedCommandKey, TrustedHostKey, TrustSetDoc, Validity


def _ms(at: datetime | None) -> int | None:
    return None if at is None else int(at.timestamp() * 1000)


def _validity(r: KeyRecord) -> Validity:
    return Validity(_ms(r.not_before), _ms(r.not_after))


def trust_set_serial(keys: KeyStore, at: datetime) -> int:
    """The serial of the set valid at ``at``: the latest moment, at or before ``at``, at which a key of
    the set began or ended its validity (ms; 0 when no key has a boundary yet). It depends only on the
    shared key directory, so every node sends the same serial for the same keys (a failover to a node
    started earlier never looks like a rollback, issue 18) and it grows with every rotation and every
    retired key leaving its overlap."""
    at_ms = int(at.timestamp() * 1000)
    marks = [m for r in keys.records() if r.use in ("command-signing", "relay-host-key")
             for m in (_ms(r.not_before), _ms(r.not_after)) if m is not None and m <= at_ms]
    return max(marks, default=0)


def agent_trust_set(keys: KeyStore, now: datetime | None = None) -> tuple[TrustSetDoc, str]:
    """The trust set valid at ``now`` and the id of the command-signing key that must sign it."""
    at = now or datetime.now(UTC)
    commands = keys.trusted("command-signing", at)
    hosts = keys.trusted("relay-host-key", at)
    doc = TrustSetDoc(
        serial_ms=trust_set_serial(keys, at),
        command_keys=tuple(TrustedCommandKey(bytes.fromhex(r.public), _validity(r)) for r in commands),
        relay_host_keys=tuple(TrustedHostKey(r.fingerprint, _validity(r)) for r in hosts),
    )
    # oldest first: a key with a not_after (retired, still in overlap) before the current one
    signer = min(commands, key=lambda r: (r.current, _ms(r.not_before) or 0))
    return doc, signer.key_id
