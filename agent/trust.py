"""The keys this agent trusts: command-signing keys and relay host keys, across the gateway's rotations.

Until the gateway sends a trust set, the agent trusts what enrolment gave it
(``identity.json``: one command verify key, one relay host key fingerprint).
A trust set arrives as a ``TrustSet`` command; ``CommandGuard`` accepts it only
when its signature verifies with a key trusted NOW, then ``AgentTrust.apply``
keeps it in ``<data_dir>/trust.json`` and trusts exactly its keys, each within
its validity (docs/scale-out.md "Keys: key ids, key sets and rotation").
A set older than the one kept is refused (no rolling back to a retired key).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

from printgate.logs import get_logger
from printgate.wire.trust_set import TrustSetDoc, TrustSetInvalid, command_key_id, parse_trust_set

log = get_logger(__name__)

TRUST_FILE = "trust.json"


class AgentTrust:
    def __init__(self, enrolled_key: bytes, relay_pin: str = "", *, path: Path | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._enrolled_key = enrolled_key
        self._enrolled_id = command_key_id(enrolled_key)
        self._pin = relay_pin
        self._path = path
        self._clock = clock
        self.doc: TrustSetDoc | None = None
        self.kept: bytes = b""  # the set's bytes as verified and kept (``trust.json``)
        if path is not None and path.exists():
            try:
                data = path.read_bytes()
                self.doc = parse_trust_set(data)
                self.kept = data
            except (OSError, TrustSetInvalid) as exc:  # keep working with the enrolment's keys
                log.error("agent.trust_set.unreadable", path=str(path), error=str(exc),
                          hint="the enrolment's keys are trusted until the gateway sends the set again")

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def command_key(self, key_id: str) -> bytes | None:
        """The raw verify key ``key_id`` if it is trusted now (an empty id: the enrolment's key)."""
        if self.doc is None:
            return self._enrolled_key if key_id in ("", self._enrolled_id) else None
        found = self.doc.command_key(key_id, self._now_ms())
        return None if found is None else found.public_raw

    def host_fingerprints(self) -> list[str]:
        """Relay host key fingerprints trusted now."""
        if self.doc is None:
            return [self._pin] if self._pin else []
        return self.doc.host_fingerprints(self._now_ms())

    def command_key_ids(self) -> list[str]:
        if self.doc is None:
            return [self._enrolled_id]
        now = self._now_ms()
        return [k.key_id for k in self.doc.command_keys if k.validity.covers(now)]

    def _same_keys(self, doc: TrustSetDoc) -> bool:
        kept = self.doc
        return kept is not None and kept.command_keys == doc.command_keys and kept.relay_host_keys == doc.relay_host_keys

    def is_kept(self, data: bytes) -> bool:
        """``data`` is byte for byte the set already verified and kept: applying it changes nothing."""
        return bool(self.kept) and data == self.kept

    def apply(self, data: bytes, *, signed_by: str) -> TrustSetDoc:
        """Keep the (already signature-checked) set in ``data``; ``TrustSetInvalid`` says why not."""
        doc = parse_trust_set(data)
        if self.doc is not None and doc.serial_ms < self.doc.serial_ms and self._same_keys(doc):
            return self.doc  # the keys kept, from a gateway numbering sets otherwise (an older version): nothing goes back
        if self.doc is not None and doc.serial_ms < self.doc.serial_ms:
            raise TrustSetInvalid(f"the trust set of {doc.serial_ms} is older than the one kept "
                                  f"({self.doc.serial_ms}): refusing to go back")
        now = self._now_ms()
        if not any(k.validity.covers(now) for k in doc.command_keys):
            raise TrustSetInvalid("no command key of the trust set is valid now: the agent would refuse every "
                                  "command")
        if self._path is not None:
            tmp = self._path.with_name(f".{self._path.name}.tmp")
            try:
                tmp.write_bytes(data)
                os.replace(tmp, self._path)
            except OSError as exc:  # a full disk: trusted in memory; the gateway sends it on every connect
                with contextlib.suppress(OSError):
                    tmp.unlink()
                log.error("agent.trust_set.not_saved", path=str(self._path), error=str(exc),
                          hint="the set is used until the agent restarts; free space in the data directory")
        changed = self.doc is None or self.doc.command_keys != doc.command_keys \
            or self.doc.relay_host_keys != doc.relay_host_keys
        self.doc = doc
        self.kept = data
        if changed:
            log.info("agent.trust_set.accepted", signed_by=signed_by,
                     command_keys=[k.key_id for k in doc.command_keys],
                     relay_host_keys=[h.fingerprint for h in doc.relay_host_keys])
        return doc
