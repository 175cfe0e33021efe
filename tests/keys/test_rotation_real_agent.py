"""A real `printgate agent run` process across `printgate keys rotate` of the relay CA, the relay host key
and the command-signing key: its tunnel works before, during the overlap and after it, without enrolling
again; a trust set signed by a key it does not trust is refused and logged."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.channel.enroll import EnrolledIdentity
from lab.catalog import by_name
from printgate.cli.demo_system import DemoSystem
from printgate.wire import agent_pb2 as pb
from printgate.wire.commands import build_command, raw_public_key, sign_command
from printgate.wire.trust_set import TrustedCommandKey, TrustSetDoc, parse_trust_set

PRINTGATE = str(Path(sys.executable).with_name("printgate"))
PRINTER = by_name("ricoh_mpc3002")
ROTATED = ("relay-ca", "relay-host-key", "command-signing")

pytestmark = pytest.mark.timeout(240)


async def _run(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(PRINTGATE, *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, (args, out.decode(), err.decode())
    return out.decode()


async def _page(system: DemoSystem) -> str:
    """Open a session for the lab printer through the agent's tunnel, read its page, close the session."""
    launch = await system.open_session_as_demo_user(PRINTER.ip)
    parts = urlsplit(launch)
    local = f"http://127.0.0.1:{parts.port}"
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            first = await client.get(f"{local}{parts.path}?{parts.query}", headers={"Host": parts.netloc})
            cookie = first.headers["set-cookie"].split(";", 1)[0]
            page = await client.get(f"{local}/", headers={"Host": parts.netloc, "Cookie": cookie})
        assert page.status_code == 200
        return page.text
    finally:
        await system.close_all_sessions(reason="test page read")


async def _wait_for(predicate: object, what: str, timeout: float = 30) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.1)


async def test_a_real_agent_follows_key_rotations_without_enrolling_again(tmp_path: Path) -> None:
    async with DemoSystem(tmp_path / "cloud", log_level="warning", with_agent=False) as system:
        cloud = system.cloud
        agent_dir = tmp_path / "agent"
        ca = tmp_path / "gateway-ca.pem"
        ca.write_bytes(cloud.ca.cert_pem)
        await _run("agent", "enroll", "--url", cloud.channel.enrol_target, "--token", system.enrolment_token,
                   "--data-dir", str(agent_dir), "--ca-cert", str(ca))
        identity = EnrolledIdentity.load(agent_dir)
        settings = system.agent_settings(agent_dir).to_config() | {"targets": [PRINTER.ip]}
        config = tmp_path / "agent.toml"
        config.write_text("\n".join(['log_level = "info"', "[agent]",
                                     *(f"{k} = {json.dumps(v)}" for k, v in settings.items())]) + "\n")
        log_path = tmp_path / "agent.log"
        with open(log_path, "wb") as log_file:
            agent = await asyncio.create_subprocess_exec(PRINTGATE, "agent", "run", "--config", str(config),
                                                         stdout=log_file, stderr=log_file)
        trust_file = agent_dir / "trust.json"
        try:
            await system.wait_for_devices(minimum=1, timeout=120)
            assert PRINTER.name in await _page(system)  # before
            await _wait_for(trust_file.exists, "the trust set sent on the command stream")
            before = parse_trust_set(trust_file.read_bytes())
            assert [k.public_raw for k in before.command_keys] == [identity.command_verify_key]
            assert before.host_fingerprints(int(time.time() * 1000)) == [identity.relay_host_key_fingerprint]

            # the operator's command for the command-signing key; the store's call for the two relay keys
            # (the CLI of every use is tested in test_key_store.py; each run here costs a process start)
            common = ["--key-dir", str(cloud.key_dir), "--database-url", cloud.settings.database_url]
            await _run("keys", "rotate", "command-signing", "--overlap-seconds", "3600", *common)
            for use in ("relay-ca", "relay-host-key"):
                cloud.keys.rotate(use, overlap=timedelta(hours=1))
            assert PRINTER.name in await _page(system)  # during the overlap: new keys, no re-enrolment
            during = parse_trust_set(trust_file.read_bytes())
            assert len(during.command_keys) == 2 and len(during.relay_host_keys) == 2
            assert cloud.relay.host_key_fingerprint != identity.relay_host_key_fingerprint
            assert cloud.hub.verify_key_raw != identity.command_verify_key

            # a trust set signed by a key the agent does not trust: refused, logged, nothing changes
            attacker = Ed25519PrivateKey.generate()
            evil = TrustSetDoc(during.serial_ms + 1, (TrustedCommandKey(raw_public_key(attacker.public_key())),), ())
            now = int(time.time() * 1000)
            forged = sign_command(build_command(pb.TrustSet(set_json=evil.encode()), command_id="forged-set",
                                                agent_id=identity.agent_id, issued_at_ms=now,
                                                expires_at_ms=now + 60_000), attacker)
            await cloud.hub.deliver(identity.agent_id, forged, via="grpc")
            await _wait_for(lambda: b"agent.trust_set.refused" in log_path.read_bytes(), "the refusal in the log")
            assert parse_trust_set(trust_file.read_bytes()) == during

            for use in ROTATED:
                cloud.keys.end_overlap(use)
            cloud.hub.refresh_keys(force=True)  # what the hub does within a second
            assert PRINTER.name in await _page(system)  # after: only the new keys are trusted
            after = parse_trust_set(trust_file.read_bytes())
            now = int(time.time() * 1000)
            assert [k.public_raw for k in after.command_keys if k.validity.covers(now)] == [cloud.hub.verify_key_raw]
            assert after.host_fingerprints(now) == [cloud.relay.host_key_fingerprint]
        finally:
            agent.terminate()
            await asyncio.wait_for(agent.wait(), 30)
