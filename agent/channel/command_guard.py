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
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True, slots=True)
class VerifiedCommand:
    id: str
    kind: str  # "open_tunnel" | "close_tunnel" | "desired_config" | "ping" | "rescan" | "trust_set"
    command: pb.Command
    channel: str  # "grpc" | "mqtt"


class CommandGuard:
    def __init__(self, agent_id: str, verify_key: bytes, *, state_path: Path | None = None,
                 clock: Callable[[], float] = time.time, skew_s: float = 30.0,
                 trust: AgentTrust | None = None) -> None:
        self._agent_id = agent_id
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

    def check(self, envelope: pb.SignedCommand, *, channel: str) -> VerifiedCommand:
        """The verified command, or ``CommandRejected`` saying why it was refused."""
        unchanged = self._unchanged_trust_set(envelope, channel)
        if unchanged is not None:
            return unchanged
        key = self.trust.command_key(envelope.key_id)
        try:
            from printgate.wire.commands import verify_command  # cryptography: not loaded at start

            if key is None:
                raise CommandSignatureInvalid(
                    f"command signed by key {envelope.key_id or '(none)'}, which this agent does not trust "
                    f"(trusted: {', '.join(self.trust.command_key_ids())}): refusing it")
            command = verify_command(envelope, key)
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
