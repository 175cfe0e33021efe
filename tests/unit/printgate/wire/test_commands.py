"""Signed command envelopes (printgate/wire/commands.py): sign the bytes sent, verify before parsing."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from printgate.errors import CommandSignatureInvalid
from printgate.wire import agent_pb2 as pb
from printgate.wire.commands import (
    DOMAIN,
    build_command,
    key_id,
    raw_public_key,
    sign_command,
    summarise,
    verify_command,
)

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUBLIC = raw_public_key(KEY.public_key())


def rescan() -> pb.Command:
    return build_command(pb.Rescan(requested_by="tech@example.com"), command_id="c-1", agent_id="ag-1",
                         issued_at_ms=1_000, expires_at_ms=301_000)


def test_a_signed_command_verifies_and_comes_back_whole() -> None:
    envelope = sign_command(rescan(), KEY)
    assert envelope.key_id == key_id(PUBLIC) and len(envelope.key_id) == 16
    command = verify_command(envelope, PUBLIC)
    assert command == rescan() and command.rescan.requested_by == "tech@example.com"


def test_any_bit_flip_in_the_bytes_or_signature_is_refused() -> None:
    envelope = sign_command(rescan(), KEY)
    flipped = bytearray(envelope.command)
    flipped[-1] ^= 0x01
    with pytest.raises(CommandSignatureInvalid):
        verify_command(pb.SignedCommand(command=bytes(flipped), signature=envelope.signature), PUBLIC)
    bad_sig = bytearray(envelope.signature)
    bad_sig[0] ^= 0x80
    with pytest.raises(CommandSignatureInvalid):
        verify_command(pb.SignedCommand(command=envelope.command, signature=bytes(bad_sig)), PUBLIC)


def test_another_key_or_a_malformed_key_is_refused() -> None:
    envelope = sign_command(rescan(), KEY)
    other = raw_public_key(Ed25519PrivateKey.generate().public_key())
    with pytest.raises(CommandSignatureInvalid):
        verify_command(envelope, other)
    with pytest.raises(CommandSignatureInvalid):
        verify_command(envelope, b"short")


def test_the_signature_is_domain_separated() -> None:
    data = rescan().SerializeToString(deterministic=True)
    undomained = pb.SignedCommand(command=data, signature=KEY.sign(data))  # the same bytes, no DOMAIN
    with pytest.raises(CommandSignatureInvalid):
        verify_command(undomained, PUBLIC)
    assert DOMAIN.endswith(b"\x00")


def test_only_command_bodies_are_accepted_and_placed_in_the_oneof() -> None:
    with pytest.raises(TypeError, match="is not a command body"):
        build_command(pb.Command(), command_id="c", agent_id="a", issued_at_ms=0, expires_at_ms=1)  # type: ignore[arg-type]
    close = build_command(pb.CloseTunnel(), command_id="c-2", agent_id="ag-1", issued_at_ms=0, expires_at_ms=1)
    assert close.WhichOneof("body") == "close_tunnel"


def test_the_summary_names_the_kind_and_nothing_secret() -> None:
    s = summarise(rescan())
    assert (s.id, s.agent_id, s.kind, s.expires_at_ms) == ("c-1", "ag-1", "rescan", 301_000)
    assert summarise(pb.Command(id="x")).kind == "none"
