"""Checks every command before the agent acts on it, whatever channel brought it.

A command is accepted only if its Ed25519 signature verifies with a key the
agent trusts now (``agent/trust.py``: the key received at enrolment, or the
keys of the last trust set the gateway sent), it names this agent, it has not expired (with a small
clock-skew allowance) and its id was never accepted before. Accepted ids are
kept (and persisted to ``state_path``) until well after they expire, so a
command delivered over both gRPC and MQTT runs at most once, also across
restarts. A verified ``trust_set`` command replaces the trusted keys; one
signed by a key the agent does not trust is refused and logged
(``agent.trust_set.refused``).

The channels call ``admit``: one command at a time, in arrival order, so a command that follows
a trust set is checked against the keys that set brings. A trust set that is not the one kept
has its signature checked in a short-lived child process (``agent.channel.signature_child``),
before anything of it is trusted: the polling agent never loads ``cryptography`` for it (~8-9 MB
resident, issue 17 item 6). Other commands are checked in-process (an ``open_tunnel`` loads
cryptography with asyncssh anyway).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from agent.channel.signature_child import verify_in_child
from agent.errors import (
    COMMAND_EXPIRED,
    COMMAND_FORGED,
    COMMAND_MALFORMED,
    COMMAND_REPLAYED,
    COMMAND_WRONG_AGENT,
    CommandRejected,
)
from agent.trust import AgentTrust
from printgate.errors import CommandSignatureInvalid
from printgate.logs import get_logger
from printgate.wire import agent_pb2 as pb
from printgate.wire.trust_set import TrustSetInvalid

log = get_logger(__name__)

MAX_LIFETIME_MS = 3_600_000
# (envelope, verify key) -> verified / not / no verdict (then checked in-process)
SignatureCheck = Callable[[pb.SignedCommand, bytes], Awaitable[bool | None]]


@dataclass(frozen=True, slots=True)
class VerifiedCommand:
    id: str
    kind: str  # "open_tunnel" | "close_tunnel" | "desired_config" | "ping" | "rescan" | "trust_set"
    command: pb.Command
    channel: str  # "grpc" | "mqtt"


class CommandGuard:
    def __init__(self, agent_id: str, verify_key: bytes, *, state_path: Path | None = None,
                 clock: Callable[[], float] = time.time, skew_s: float = 30.0,
                 trust: AgentTrust | None = None,
                 check_trust_set_apart: SignatureCheck | None = verify_in_child) -> None:
        self._agent_id = agent_id
        self._apart = check_trust_set_apart
        self._order = asyncio.Lock()  # ``admit``: one command at a time, in arrival order
        self.trust = trust or AgentTrust(verify_key, clock=clock)
        self._path = state_path
        self._clock = clock
        self._skew_ms = int(skew_s * 1000)
        self._seen: dict[str, int] = {}  # id -> expires_at_ms
        if state_path is not None and state_path.exists():
            try:
                self._seen = {str(k): int(v) for k, v in json.loads(state_path.read_text()).items()}
            except (ValueError, AttributeError):
                log.warning("command_guard.state_unreadable", path=str(state_path))

    async def admit(self, envelope: pb.SignedCommand, *, channel: str) -> VerifiedCommand:
        """``check``, one command at a time in arrival order; a trust set that is not the kept one has
        its signature checked in a child process (no ``cryptography`` in this one)."""
        async with self._order:
            unchanged = self._unchanged_trust_set(envelope, channel)
            if unchanged is not None:
                return unchanged
            key = self.trust.command_key(envelope.key_id)
            if self._apart is not None and key is not None and _claimed_kind(envelope) == "trust_set":
                verdict = await self._apart(envelope, key)
                if verdict is not None:
                    return self._check(envelope, channel, signature_verified=verdict)
            return self.check(envelope, channel=channel)

    def check(self, envelope: pb.SignedCommand, *, channel: str) -> VerifiedCommand:
        """The verified command, or ``CommandRejected`` saying why it was refused."""
        unchanged = self._unchanged_trust_set(envelope, channel)
        if unchanged is not None:
            return unchanged
        return self._check(envelope, channel, signature_verified=None)

    def _check(self, envelope: pb.SignedCommand, channel: str, *,
               signature_verified: bool | None) -> VerifiedCommand:
        """``signature_verified``: the child's verdict on the signature, ``None`` to check it here."""
        key = self.trust.command_key(envelope.key_id)
        try:
            if key is None:
                raise CommandSignatureInvalid(
                    f"command signed by key {envelope.key_id or '(none)'}, which this agent does not trust "
                    f"(trusted: {', '.join(self.trust.command_key_ids())}): refusing it")
            if signature_verified is None:  # cryptography: not loaded at start
                from printgate.wire.commands import verify_command

                command = verify_command(envelope, key)
            elif signature_verified:
                command = pb.Command.FromString(envelope.command)
            else:
                raise CommandSignatureInvalid(
                    "command signature does not verify with the enrolled command key: refusing it")
        except CommandSignatureInvalid as exc:
            if _claimed_kind(envelope) == "trust_set":
                log.error("agent.trust_set.refused", key_id=envelope.key_id, reason=exc.message,
                          hint="a trust set not signed by a key this agent trusts; if the gateway's keys were "
                               "rotated while this agent was away longer than the overlap, enrol it again")
            raise CommandRejected(exc.message, code=COMMAND_FORGED) from exc
        now_ms = int(self._clock() * 1000)
        if command.agent_id != self._agent_id:
            raise CommandRejected(
                f"command {command.id} is for agent {command.agent_id}, not {self._agent_id}: refusing it",
                code=COMMAND_WRONG_AGENT)
        if not command.id:
            raise CommandRejected("command has no id: refusing it", code=COMMAND_MALFORMED)
        if command.expires_at_ms + self._skew_ms <= now_ms:
            raise CommandRejected(f"command {command.id} expired: refusing it", code=COMMAND_EXPIRED)
        if (command.issued_at_ms - self._skew_ms > now_ms
                or command.expires_at_ms - command.issued_at_ms > MAX_LIFETIME_MS):
            raise CommandRejected(f"command {command.id} has an implausible validity window",
                                  code=COMMAND_MALFORMED)
        if command.id in self._seen:
            raise CommandRejected(f"command {command.id} was already executed: replay refused",
                                  code=COMMAND_REPLAYED)
        if command.WhichOneof("body") == "trust_set":
            try:
                self.trust.apply(command.trust_set.set_json, signed_by=envelope.key_id)
            except TrustSetInvalid as exc:
                log.error("agent.trust_set.refused", key_id=envelope.key_id, reason=str(exc))
                raise CommandRejected(f"trust set refused: {exc}", code=COMMAND_MALFORMED) from exc
        self._seen[command.id] = command.expires_at_ms
        self._forget_old(now_ms)
        self._save()
        return VerifiedCommand(command.id, command.WhichOneof("body") or "none", command, channel)

    def _unchanged_trust_set(self, envelope: pb.SignedCommand, channel: str) -> VerifiedCommand | None:
        """The gateway sends its trust set on every connect; when it is byte for byte the set this
        agent already verified and keeps, there is nothing to apply and nothing to answer, so the
        signature is not checked again: that keeps cryptography (~7 MB RSS) out of an agent that only
        polls (issue 17's footprint). Anything else goes through the full check."""
        try:
            command = pb.Command.FromString(envelope.command)
        except Exception:
            return None
        if command.WhichOneof("body") != "trust_set" or command.agent_id != self._agent_id \
                or not self.trust.is_kept(command.trust_set.set_json):
            return None
        return VerifiedCommand(command.id, "trust_set", command, channel)

    def _forget_old(self, now_ms: int) -> None:
        horizon = now_ms - 2 * self._skew_ms
        for cid in [c for c, exp in self._seen.items() if exp < horizon]:
            del self._seen[cid]

    def _save(self) -> None:
        if self._path is None:
            return
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._seen))
        os.replace(tmp, self._path)


def _claimed_kind(envelope: pb.SignedCommand) -> str:
    """What an envelope that failed verification claims to carry (only for the log line)."""
    try:
        return pb.Command.FromString(envelope.command).WhichOneof("body") or "none"
    except Exception:
        return "unreadable"
