"""Witness cosignatures over signed checkpoints (pure, Ed25519).

A witness -- a small service a customer's security team runs on its own
machine (``audit.witness``) -- countersigns each gateway checkpoint it has
checked to be consistent with the last one it saw. The signed message is
``b"printgate-audit-cosignature-v1\\n"`` followed by the RFC 8785 bytes of
``{"checkpoint": {...the gateway's signed checkpoint, signature included...},
"cosigned_at": "...", "witness": "<witness key id>"}``. A cosignature binds
the witness to the exact tree head the gateway signed; once the gateway holds
it, the log can no longer lose or rewrite the records it covers without
``audit verify --witness-key`` noticing.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.canonical import canonical_bytes
from audit.checkpoint import Checkpoint, Ed25519KeyHolder, Ed25519PublicKeyHolder
from printgate.errors import ConfigError

COSIGNATURE_DOMAIN = b"printgate-audit-cosignature-v1\n"


@dataclass(frozen=True, slots=True)
class Cosignature:
    checkpoint: Checkpoint
    witness: str  # key id of the witness key
    witness_public_key: str  # raw 32-byte Ed25519 public key, hex
    cosigned_at: str  # RFC 3339 UTC, the witness's clock
    signature: str  # hex

    def signed_bytes(self) -> bytes:
        return cosigned_message(self.checkpoint, self.witness, self.cosigned_at)

    def to_json(self) -> dict[str, object]:
        return {"checkpoint": self.checkpoint.to_json(), "cosigned_at": self.cosigned_at,
                "signature": self.signature, "witness": self.witness,
                "witness_public_key": self.witness_public_key}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Cosignature:
        try:
            cp = data["checkpoint"]
            if not isinstance(cp, dict):
                raise TypeError("checkpoint is not an object")
            return cls(Checkpoint.from_json(cp), str(data["witness"]), str(data["witness_public_key"]),
                       str(data["cosigned_at"]), str(data["signature"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed cosignature: {exc}") from exc

    def label(self) -> str:
        return f"witness {self.witness} (cosigned {self.cosigned_at})"


def cosigned_message(cp: Checkpoint, witness: str, cosigned_at: str) -> bytes:
    return COSIGNATURE_DOMAIN + canonical_bytes(
        {"checkpoint": cp.to_json(), "cosigned_at": cosigned_at, "witness": witness})


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class Cosigner(Ed25519KeyHolder):
    """The witness's Ed25519 private key."""

    _what = "the witness key"
    _keygen = "printgate audit witness keygen"

    def cosign(self, cp: Checkpoint, *, at: str) -> Cosignature:
        sig = self._key.sign(cosigned_message(cp, self.key_id, at)).hex()
        return Cosignature(cp, self.key_id, _raw(self._key.public_key()).hex(), at, sig)


class WitnessVerifier(Ed25519PublicKeyHolder):
    """Checks cosignatures of one witness with only its public key."""

    _what = "the witness public key"

    @classmethod
    def of(cls, cosig: Cosignature) -> WitnessVerifier:
        """The key a cosignature names (what the gateway checks before storing one)."""
        try:
            return cls(Ed25519PublicKey.from_public_bytes(bytes.fromhex(cosig.witness_public_key)))
        except ValueError as exc:
            raise ConfigError(f"the witness public key is not a raw Ed25519 key: {exc}") from exc

    def is_valid(self, cosig: Cosignature) -> bool:
        if cosig.witness != self.key_id:
            return False
        try:
            self._public.verify(bytes.fromhex(cosig.signature), cosig.signed_bytes())
        except (InvalidSignature, ValueError):
            return False
        return True
