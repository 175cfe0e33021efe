"""A command's Ed25519 signature checked in a short-lived child process (issue 17 item 6).

Loading ``cryptography`` makes ~8-9 MB of the agent resident for as long as it runs (its
``_rust`` extension carries its own OpenSSL; measured with ``/proc/PID/smaps``). The gateway
sends a new trust set at enrolment and with every key rotation, so an agent that only polls
would carry that for one signature check. ``verify_in_child`` runs the very same check
(``printgate.wire.commands.verify_command``) in ``python -m agent.channel.signature_child``
and returns its verdict; the agent process never imports ``cryptography`` for it.

The verdict is ``True`` (verified), ``False`` (the signature does not verify) or ``None``: the
child could not give one (not started, crashed, timed out, said something unreadable). The
caller must then check in-process (``CommandGuard`` does): nothing is ever trusted unverified.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from printgate.logs import get_logger
from printgate.wire import agent_pb2 as pb

log = get_logger(__name__)

CHILD_TIMEOUT_S = 60.0  # a Raspberry Pi under load starts Python and imports cryptography in ~1-2 s


async def verify_in_child(envelope: pb.SignedCommand, verify_key_raw: bytes, *,
                          timeout: float = CHILD_TIMEOUT_S) -> bool | None:
    """Does ``envelope``'s signature verify with ``verify_key_raw``? (checked in a child process)"""
    request = json.dumps({"key": verify_key_raw.hex(), "envelope": envelope.SerializeToString().hex()}).encode()
    began = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent.channel.signature_child", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    except OSError as exc:  # no fork/spawn (memory), no interpreter at sys.executable
        log.warning("agent.signature_child.failed", error=f"not started: {exc}",
                    action="the signature is checked in the agent's own process")
        return None
    try:
        out, err = await asyncio.wait_for(proc.communicate(request), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        log.warning("agent.signature_child.failed", error=f"no verdict within {timeout:.0f} s",
                    action="the signature is checked in the agent's own process")
        return None
    try:
        verdict = json.loads(out)["verified"] if proc.returncode == 0 else None
    except (ValueError, KeyError, TypeError):
        verdict = None
    if not isinstance(verdict, bool):
        log.warning("agent.signature_child.failed", exit=proc.returncode,
                    error=err.decode(errors="replace").strip()[-500:] or out.decode(errors="replace")[-200:],
                    action="the signature is checked in the agent's own process")
        return None
    log.debug("agent.signature_child.verdict", verified=verdict, ms=round((time.monotonic() - began) * 1000))
    return verdict


def main() -> None:
    """stdin: ``{"key": hex, "envelope": hex}``; stdout: ``{"verified": bool}`` (exit 0), else exit 2."""
    from printgate.errors import CommandSignatureInvalid
    from printgate.wire.commands import verify_command

    request = json.loads(sys.stdin.read())
    envelope = pb.SignedCommand.FromString(bytes.fromhex(request["envelope"]))
    try:
        verify_command(envelope, bytes.fromhex(request["key"]))
        verified = True
    except CommandSignatureInvalid:
        verified = False
    sys.stdout.write(json.dumps({"verified": verified}))


if __name__ == "__main__":
    main()
