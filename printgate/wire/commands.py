"""Signed command envelopes: pure helpers (no I/O, no clock).

The cloud serialises a ``Command`` once and signs exactly those bytes with
Ed25519 (domain-separated by ``DOMAIN``); the agent verifies the signature
before parsing. Because the signature is over the transmitted bytes, no
canonical re-encoding is needed and any bit flip invalidates it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from printgate.errors import CommandSignatureInvalid
from printgate.wire import agent_pb2 as pb

DOMAIN = b"printgate-command-v1\x00"

CommandBody = pb.OpenTunnel | pb.CloseTunnel | pb.DesiredConfig | pb.Ping | pb.Rescan | pb.TrustSet

_BODY_FIELD: dict[type, str] = {
    pb.OpenTunnel: "open_tunnel",
    pb.CloseTunnel: "close_tunnel",
    pb.DesiredConfig: "desired_config",
    pb.Ping: "ping",
    pb.Rescan: "rescan",
    pb.TrustSet: "trust_set",
}


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public_raw: bytes) -> str:
    """Short stable id of a verify key (hex sha256 prefix)."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


def build_command(
    body: CommandBody, *, command_id: str, agent_id: str, issued_at_ms: int, expires_at_ms: int
) -> pb.Command:
    """A ``Command`` with ``body`` placed in its oneof."""
    field = _BODY_FIELD.get(type(body))
    if field is None:
        raise TypeError(f"{type(body).__name__} is not a command body")
    command = pb.Command(
        id=command_id, agent_id=agent_id, issued_at_ms=issued_at_ms, expires_at_ms=expires_at_ms
    )
    getattr(command, field).CopyFrom(body)
    return command


def sign_command(command: pb.Command, key: Ed25519PrivateKey) -> pb.SignedCommand:
    data = command.SerializeToString(deterministic=True)
    return pb.SignedCommand(
        command=data,
        signature=key.sign(DOMAIN + data),
        key_id=key_id(raw_public_key(key.public_key())),
    )


def verify_command(envelope: pb.SignedCommand, verify_key_raw: bytes) -> pb.Command:
    """The command inside ``envelope`` if its signature is valid; else raise."""
    try:
        public = Ed25519PublicKey.from_public_bytes(verify_key_raw)
        public.verify(envelope.signature, DOMAIN + envelope.command)
    except (InvalidSignature, ValueError) as exc:
        raise CommandSignatureInvalid(
            "command signature does not verify with the enrolled command key: refusing it"
        ) from exc
    command = pb.Command()
    command.ParseFromString(envelope.command)
    return command


@dataclass(frozen=True, slots=True)
class CommandSummary:
    """Log-safe description of a command (no credentials)."""

    id: str
    agent_id: str
    kind: str
    expires_at_ms: int


def summarise(command: pb.Command) -> CommandSummary:
    return CommandSummary(
        id=command.id,
        agent_id=command.agent_id,
        kind=command.WhichOneof("body") or "none",
        expires_at_ms=command.expires_at_ms,
    )
