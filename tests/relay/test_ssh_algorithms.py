"""What the relay shows a scanner, and which clients it refuses: ssh-audit, OpenSSH, asyncssh.

The relay under test runs with the default limits, so ssh-audit's connection
rate probe (DHEat) sees the production throttling.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from agent.tunnel.client import KEX_ALGS as AGENT_KEX_ALGS
from gateway.firewall import InProcessFirewall
from gateway.relay import Relay, RelayLimits
from gateway.relay.crypto_policy import KEX_ALGS
from printgate.testing.audit import RecordingAuditSink
from tests.relay.conftest import RelayEnv, need_tool

pytestmark = pytest.mark.timeout(90)

HYBRID = "mlkem768x25519-sha256"
CURVE25519 = {"curve25519-sha256", "curve25519-sha256@libssh.org"}
PSEUDO_KEX = {"ext-info-s", "kex-strict-s-v00@openssh.com"}


@pytest.fixture
async def default_relay(tmp_path: Path) -> AsyncIterator[Relay]:
    firewall = InProcessFirewall()
    relay = Relay("127.0.0.1", 0, host_key_path=tmp_path / "host_key", ca_key_path=tmp_path / "ca_key",
                  audit=RecordingAuditSink(), firewall=firewall, limits=RelayLimits())
    async with relay:
        await firewall.allow("scanner-agent", "127.0.0.1", relay.port, 300)
        yield relay


def ssh_audit_command() -> list[str]:
    if importlib.util.find_spec("ssh_audit") is not None:  # the dev dependency (pip ssh-audit)
        return [sys.executable, "-m", "ssh_audit"]
    if os.environ.get("CI"):
        raise RuntimeError("ssh-audit is required under CI (a dev dependency: pip install -e .[dev])")
    pytest.skip("ssh-audit not installed")


async def ssh_audit(port: int) -> dict[str, Any]:
    result = await asyncio.to_thread(
        subprocess.run, [*ssh_audit_command(), "-j", "-p", str(port), "127.0.0.1"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.stdout.startswith("{"), result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


async def test_banner_names_no_ssh_software(default_relay: Relay) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", default_relay.port)
    try:
        line = await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()
        await writer.wait_closed()
    assert line == b"SSH-2.0-relay\r\n"


async def test_ssh_audit_finds_only_modern_algorithms_and_throttling(default_relay: Relay) -> None:
    report = await ssh_audit(default_relay.port)
    assert report["banner"]["raw"] == "SSH-2.0-relay"
    kex = {a["algorithm"] for a in report["kex"]} - PSEUDO_KEX
    assert kex == set(KEX_ALGS)
    assert HYBRID in kex and kex <= CURVE25519 | {HYBRID, "sntrup761x25519-sha512",
                                                   "sntrup761x25519-sha512@openssh.com"}
    assert {a["algorithm"] for a in report["key"]} == {"ssh-ed25519"}
    assert {a["algorithm"] for a in report["enc"]} == {"aes128-gcm@openssh.com", "aes256-gcm@openssh.com"}
    assert {a["algorithm"] for a in report["mac"]} <= {"hmac-sha2-256-etm@openssh.com",
                                                       "hmac-sha2-512-etm@openssh.com"}
    entries = [a for part in ("kex", "key", "enc", "mac") for a in report[part]]
    assert [a["algorithm"] for a in entries if a.get("notes", {}).get("fail")] == []
    # the only warning allowed: curve25519 (kept for OpenSSH < 9.9 clients) is not post-quantum
    warned = {a["algorithm"]: a["notes"]["warn"] for a in entries if a.get("notes", {}).get("warn")}
    assert set(warned) <= CURVE25519
    assert all(w == ["does not provide protection against post-quantum attacks"] for w in warned.values())
    assert report["cves"] == []
    assert report["recommendations"] == {}
    # no DHEat throttling warning, no Terrapin-prone cipher
    assert report.get("additional_notes", []) == []


@pytest.mark.parametrize(
    ("option", "refused"),
    [
        ("KexAlgorithms=ecdh-sha2-nistp256", "no matching key exchange method"),
        ("KexAlgorithms=diffie-hellman-group14-sha256", "no matching key exchange method"),
        ("KexAlgorithms=sntrup761x25519-sha512@openssh.com", "no matching key exchange method"),
        ("Ciphers=chacha20-poly1305@openssh.com", "no matching cipher"),
        ("HostKeyAlgorithms=ecdsa-sha2-nistp256,rsa-sha2-512", "no matching host key type"),
    ],
)
async def test_openssh_client_insisting_on_a_refused_algorithm_fails(
    relay_env: RelayEnv, option: str, refused: str
) -> None:
    if option.endswith("sntrup761x25519-sha512@openssh.com") and "sntrup761x25519-sha512@openssh.com" in KEX_ALGS:
        pytest.skip("this asyncssh has liboqs: the relay offers sntrup761")
    sid, cred = await relay_env.new_session()
    opts = relay_env.ssh_files(sid, cred)
    need_tool("ssh")
    result = await asyncio.to_thread(
        subprocess.run, ["ssh", "-o", "LogLevel=INFO", "-o", option, *opts, "-N", "-p", str(relay_env.relay.port), f"{sid}@127.0.0.1"],
        capture_output=True, text=True, timeout=15, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 255
    assert refused in result.stderr, result.stderr
    assert relay_env.audit.of("relay.agent.connected", sid) == []
    await relay_env.relay.end_session(sid, "test over")


async def test_openssh_client_on_curve25519_still_connects(relay_env: RelayEnv) -> None:
    sid, cred = await relay_env.new_session()
    opts = relay_env.ssh_files(sid, cred)
    need_tool("ssh")
    proc = await asyncio.create_subprocess_exec(
        "ssh", *opts, "-o", "KexAlgorithms=curve25519-sha256", "-N", "-p", str(relay_env.relay.port),
        f"{sid}@127.0.0.1", stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    try:
        await relay_env.audit.wait_for("relay.agent.connected", sid, timeout=10)
    finally:
        proc.terminate()
        await proc.wait()
        await relay_env.relay.end_session(sid, "test over")


async def asyncssh_connects(env: RelayEnv, kex: list[str]) -> bool:
    sid, cred = await env.new_session()
    try:
        conn = await asyncio.wait_for(asyncssh.connect(
            "127.0.0.1", env.relay.port, username=sid, known_hosts=None, config=None, gss_host=None,
            agent_path=None, kex_algs=kex,
            client_keys=[(asyncssh.import_private_key(cred.private_key),
                          asyncssh.import_certificate(cred.certificate))],
        ), 10)
    except (asyncssh.KeyExchangeFailed, asyncssh.DisconnectError):
        return False
    else:
        conn.close()
        await conn.wait_closed()
        return True
    finally:
        await env.relay.end_session(sid, "test over")


async def test_relay_runs_the_post_quantum_hybrid_the_agent_prefers(relay_env: RelayEnv) -> None:
    assert AGENT_KEX_ALGS[0] == HYBRID  # the agent's first choice, so the one negotiated
    assert await asyncssh_connects(relay_env, [HYBRID])
    assert not await asyncssh_connects(relay_env, ["ecdh-sha2-nistp256"])
    assert not await asyncssh_connects(relay_env, ["mlkem768nistp256-sha256"])
