"""The agent refuses forged, tampered, expired, misaddressed and replayed commands."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.channel.command_guard import CommandGuard
from agent.errors import CommandRejected
from printgate.wire import agent_pb2 as pb
from printgate.wire.commands import build_command, raw_public_key, sign_command

NOW = 1_800_000_000.0
KEY = Ed25519PrivateKey.generate()
VERIFY = raw_public_key(KEY.public_key())


def envelope(*, cid: str = "c1", agent: str = "agt-a", issued: float = NOW, ttl: float = 30,
             key: Ed25519PrivateKey = KEY) -> pb.SignedCommand:
    cmd = build_command(pb.CloseTunnel(session_id="s", reason="r"), command_id=cid, agent_id=agent,
                        issued_at_ms=int(issued * 1000), expires_at_ms=int((issued + ttl) * 1000))
    return sign_command(cmd, key)


def guard(path: Path | None = None) -> CommandGuard:
    return CommandGuard("agt-a", VERIFY, state_path=path, clock=lambda: NOW, skew_s=5)


def test_valid_command_is_accepted() -> None:
    assert guard().check(envelope(), channel="grpc").kind == "close_tunnel"


def test_command_signed_by_another_key_is_refused() -> None:
    with pytest.raises(CommandRejected) as err:
        guard().check(envelope(key=Ed25519PrivateKey.generate()), channel="grpc")
    assert err.value.code == "command_forged"


def test_tampered_command_bytes_are_refused() -> None:
    env = envelope()
    data = bytearray(env.command)
    data[-3] ^= 0x01
    env.command = bytes(data)
    with pytest.raises(CommandRejected) as err:
        guard().check(env, channel="mqtt")
    assert err.value.code == "command_forged"


def test_unsigned_command_is_refused() -> None:
    env = envelope()
    env.signature = b""
    with pytest.raises(CommandRejected):
        guard().check(env, channel="mqtt")


def test_expired_command_is_refused() -> None:
    with pytest.raises(CommandRejected) as err:
        guard().check(envelope(issued=NOW - 60, ttl=30), channel="grpc")
    assert err.value.code == "command_expired"


def test_command_for_another_agent_is_refused() -> None:
    with pytest.raises(CommandRejected) as err:
        guard().check(envelope(agent="agt-b"), channel="grpc")
    assert err.value.code == "command_wrong_agent"


def test_replayed_command_is_refused_even_on_the_other_channel() -> None:
    g = guard()
    env = envelope()
    g.check(env, channel="grpc")
    with pytest.raises(CommandRejected) as err:
        g.check(env, channel="mqtt")
    assert err.value.code == "command_replayed"


def test_replay_is_refused_after_agent_restart(tmp_path: Path) -> None:
    state = tmp_path / "seen.json"
    guard(state).check(envelope(cid="persist"), channel="grpc")
    with pytest.raises(CommandRejected) as err:
        guard(state).check(envelope(cid="persist"), channel="grpc")
    assert err.value.code == "command_replayed"


def test_command_from_the_future_or_too_long_lived_is_refused() -> None:
    with pytest.raises(CommandRejected):
        guard().check(envelope(issued=NOW + 600), channel="grpc")
    with pytest.raises(CommandRejected):
        guard().check(envelope(ttl=10 * 3600), channel="grpc")
