"""The agent's rare cryptography in a short-lived child process (issue 17 item 6).

Loading ``cryptography`` makes ~8-9 MB of the agent resident for as long as it runs (its
``_rust`` extension carries its own OpenSSL; measured with ``/proc/PID/smaps``). An agent that
only polls needs it for two rare things: the signature of a new trust set (at enrolment and with
every key rotation) and the CSR of its certificate renewal (24 h certificates, renewed with a
third left: every ~16 h). ``verify_in_child`` and ``csr_in_child`` run the very same code
(``printgate.wire.commands.verify_command``, ``agent.channel.enroll.make_csr``) in
``python -m agent.channel.signature_child`` and return its answer; the agent process never
imports ``cryptography`` for them.

``None`` means the child gave no answer (not started, crashed, timed out, said something
unreadable): the caller then does the work in-process (``CommandGuard``, ``GrpcChannel``), so
nothing is ever trusted unverified and a renewal never fails for want of a child.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from printgate.logs import get_logger
from printgate.wire import agent_pb2 as pb

log = get_logger(__name__)

CHILD_TIMEOUT_S = 60.0  # a Raspberry Pi under load starts Python and imports cryptography in ~1-2 s


async def _ask_child(mode: str, request: dict[str, str], *, timeout: float) -> dict[str, Any] | None:
    """The child's JSON answer to ``request`` (``mode``: "verify" or "csr"), ``None`` without one."""
    began = time.monotonic()
    fallback = "done in the agent's own process"
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent.channel.signature_child", mode, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    except OSError as exc:  # no fork/spawn (memory), no interpreter at sys.executable
        log.warning("agent.crypto_child.failed", mode=mode, error=f"not started: {exc}", action=fallback)
        return None
    try:
        out, err = await asyncio.wait_for(proc.communicate(json.dumps(request).encode()), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        log.warning("agent.crypto_child.failed", mode=mode, error=f"no answer within {timeout:.0f} s",
                    action=fallback)
        return None
    try:
        answer = json.loads(out) if proc.returncode == 0 else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        log.warning("agent.crypto_child.failed", mode=mode, exit=proc.returncode,
                    error=err.decode(errors="replace").strip()[-500:] or out.decode(errors="replace")[-200:],
                    action=fallback)
        return None
    log.debug("agent.crypto_child.answered", mode=mode, ms=round((time.monotonic() - began) * 1000))
    return answer


async def verify_in_child(envelope: pb.SignedCommand, verify_key_raw: bytes, *,
                          timeout: float = CHILD_TIMEOUT_S) -> bool | None:
    """Does ``envelope``'s signature verify with ``verify_key_raw``? (checked in a child process)"""
    answer = await _ask_child("verify", {"key": verify_key_raw.hex(),
                                         "envelope": envelope.SerializeToString().hex()}, timeout=timeout)
    verdict = answer.get("verified") if answer is not None else None
    if answer is not None and not isinstance(verdict, bool):
        log.warning("agent.crypto_child.failed", mode="verify", error="no verdict in the answer")
        return None
    if isinstance(verdict, bool):
        log.debug("agent.signature_child.verdict", verified=verdict)
    return verdict if isinstance(verdict, bool) else None


async def csr_in_child(key_pem: bytes, name: str, *, timeout: float = CHILD_TIMEOUT_S) -> bytes | None:
    """A PEM CSR for ``name`` signed by the private key ``key_pem`` (made in a child process)."""
    answer = await _ask_child("csr", {"key_pem": key_pem.decode(), "name": name}, timeout=timeout)
    csr = answer.get("csr_pem") if answer is not None else None
    return csr.encode() if isinstance(csr, str) and csr.startswith("-----BEGIN CERTIFICATE REQUEST") else None


def main() -> None:
    """argv[1] "verify": stdin ``{"key": hex, "envelope": hex}`` -> ``{"verified": bool}``;
    "csr": stdin ``{"key_pem": str, "name": str}`` -> ``{"csr_pem": str}``. Exit 0; a failure exits 1."""
    request = json.loads(sys.stdin.read())
    if sys.argv[1:] == ["csr"]:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        from agent.channel.enroll import make_csr

        key = serialization.load_pem_private_key(request["key_pem"].encode(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        sys.stdout.write(json.dumps({"csr_pem": make_csr(key, request["name"]).decode()}))
        return
    from printgate.errors import CommandSignatureInvalid
    from printgate.wire.commands import verify_command

    envelope = pb.SignedCommand.FromString(bytes.fromhex(request["envelope"]))
    try:
        verify_command(envelope, bytes.fromhex(request["key"]))
        verified = True
    except CommandSignatureInvalid:
        verified = False
    sys.stdout.write(json.dumps({"verified": verified}))


if __name__ == "__main__":
    main()
