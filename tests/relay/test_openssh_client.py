"""Attacks on the relay with the real OpenSSH client holding a valid session certificate."""

from __future__ import annotations

import asyncio
import subprocess

import httpx
import pytest

from tests.relay.conftest import Ews, RelayEnv, need_tool

pytestmark = pytest.mark.timeout(60)


async def ssh(opts: list[str], *args: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
    need_tool("ssh")
    return await asyncio.to_thread(
        subprocess.run, ["ssh", *opts, *args], capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def port_args(env: RelayEnv, sid: str) -> list[str]:
    return ["-p", str(env.relay.port), f"{sid}@127.0.0.1"]


async def start_forward(env: RelayEnv, opts: list[str], sid: str, spec: str) -> asyncio.subprocess.Process:
    need_tool("ssh")
    return await asyncio.create_subprocess_exec(
        "ssh", *opts, "-N", "-o", "ExitOnForwardFailure=yes", "-R", spec, *port_args(env, sid),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
    await proc.wait()


async def test_legit_forward_with_openssh_client_reaches_the_device(relay_env: RelayEnv, ews: Ews) -> None:
    sid, cred = await relay_env.new_session()
    opts = relay_env.ssh_files(sid, cred)
    proc = await start_forward(relay_env, opts, sid, f"{sid}:0:{ews.host}:{ews.port}")
    try:
        host, port = await relay_env.relay.wait_forward(sid, timeout=10)
        assert host == "127.0.0.1"
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://{host}:{port}/")
        assert r.status_code == 200
        assert "printer status" in r.text
    finally:
        await stop(proc)
        await relay_env.relay.end_session(sid, "test over")


@pytest.mark.parametrize(
    ("what", "args"),
    [
        ("shell", []),
        ("exec", ["id"]),
        ("pty", ["-tt", "id"]),
        ("agent forwarding", ["-A", "true"]),
        ("env", ["-o", "SetEnv=LD_PRELOAD=/tmp/x.so", "true"]),
    ],
)
async def test_relay_refuses_session_channel_requests(relay_env: RelayEnv, what: str, args: list[str]) -> None:
    sid, cred = await relay_env.new_session()
    opts = relay_env.ssh_files(sid, cred)
    result = await ssh(opts, *port_args(relay_env, sid), *args)
    assert result.returncode != 0, f"{what} was not refused: {result.stdout}"
    assert "uid=" not in result.stdout
    event = await relay_env.audit.wait_for("relay.request.refused", sid, kind="session")
    assert event.outcome == "denied"
    await relay_env.relay.end_session(sid, "test over")


async def test_relay_refuses_sftp_subsystem(relay_env: RelayEnv, tmp_path) -> None:
    need_tool("sftp")
    sid, cred = await relay_env.new_session()
    opts = relay_env.ssh_files(sid, cred)
    batch = tmp_path / "batch"
    batch.write_text("put /etc/hostname\n")
    result = await asyncio.to_thread(
        subprocess.run,
        ["sftp", *opts, "-b", str(batch), "-P", str(relay_env.relay.port), f"{sid}@127.0.0.1"],
        capture_output=True, text=True, timeout=15, stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0
    await relay_env.audit.wait_for("relay.request.refused", sid, kind="session")
    await relay_env.relay.end_session(sid, "test over")


async def test_relay_refuses_local_forward(relay_env: RelayEnv, ews: Ews) -> None:
    from lab.ports import free_tcp_port

    sid, cred = await relay_env.new_session()
    opts = relay_env.ssh_files(sid, cred)
    lport = free_tcp_port()
    proc = await asyncio.create_subprocess_exec(
        "ssh", *opts, "-N", "-L", f"{lport}:{ews.host}:{ews.port}", *port_args(relay_env, sid),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        data = b""
        for _ in range(50):  # wait until ssh listens locally
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", lport)
                break
            except OSError:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("ssh -L never listened")
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        try:
            data = await asyncio.wait_for(reader.read(), 5)
        except ConnectionResetError:
            data = b""
        writer.close()
        assert data == b"", "the local forward reached the device"
        await relay_env.audit.wait_for("relay.request.refused", sid, kind="direct-tcpip")
    finally:
        await stop(proc)
        await relay_env.relay.end_session(sid, "test over")


@pytest.mark.parametrize(
    ("spec", "code"),
    [
        ("{sid}:18999:{host}:{port}", "port_not_allowed"),
        ("0:{host}:{port}", "other_session"),  # OpenSSH sends listen host "localhost"
        ("{other}:0:{host}:{port}", "other_session"),
    ],
)
async def test_relay_refuses_other_remote_forwards(relay_env: RelayEnv, ews: Ews, spec: str, code: str) -> None:
    sid, cred = await relay_env.new_session()
    other, _ = await relay_env.new_session()
    opts = relay_env.ssh_files(sid, cred)
    proc = await start_forward(
        relay_env, opts, sid, spec.format(sid=sid, other=other, host=ews.host, port=ews.port)
    )
    _out, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode != 0
    assert b"forwarding failed" in err
    await relay_env.audit.wait_for("relay.request.refused", sid, kind="forward", code=code)
    with pytest.raises(Exception):
        await relay_env.relay.wait_forward(sid, timeout=0.3)
    await relay_env.relay.end_session(sid, "test over")
    await relay_env.relay.end_session(other, "test over")


async def test_relay_refuses_second_forward(relay_env: RelayEnv, ews: Ews) -> None:
    sid, cred = await relay_env.new_session()
    opts = relay_env.ssh_files(sid, cred)
    spec = f"{sid}:0:{ews.host}:{ews.port}"
    proc = await asyncio.create_subprocess_exec(
        "ssh", *opts, "-N", "-o", "ExitOnForwardFailure=yes", "-R", spec, "-R", f"{sid}:0:{ews.host}:22",
        *port_args(relay_env, sid),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _out, _err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode != 0
    await relay_env.audit.wait_for("relay.request.refused", sid, kind="forward", code="second_forward")
    await relay_env.relay.end_session(sid, "test over")
