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


async def refused_kinds(env: RelayEnv, sid: str, *, expect: str, timeout: float = 5.0) -> list[str]:
    """The kinds audited as refused for ``sid``, once ``expect`` is among them."""
    await env.audit.wait_for("relay.request.refused", sid, timeout=timeout, kind=expect)
    return [str(e.details["kind"]) for e in env.audit.of("relay.request.refused", sid)]


@pytest.mark.parametrize(
    ("args", "kind"),
    [
        ([], "shell"),
        (["-T", "true"], "exec"),
        (["-tt", "id"], "pty"),
        (["-o", "SetEnv=LD_PRELOAD=/tmp/x.so", "true"], "env"),
        (["-T", "-s", "sftp"], "subsystem:sftp"),
        (["-T", "-s", "netconf"], "subsystem:netconf"),
    ],
)
async def test_relay_refuses_each_session_request_by_kind(
    relay_env: RelayEnv, args: list[str], kind: str
) -> None:
    sid, cred = await relay_env.new_session()
    opts = relay_env.ssh_files(sid, cred)
    result = await ssh(opts, *port_args(relay_env, sid), *args)
    assert result.returncode != 0, f"{kind} was not refused: {result.stdout}"
    assert result.stdout == ""
    kinds = await refused_kinds(relay_env, sid, expect=kind)
    assert "session" not in kinds  # the channel itself is not the thing refused
    event = relay_env.audit.of("relay.request.refused", sid)[kinds.index(kind)]
    assert event.outcome == "denied"
    assert event.details["code"] == "not_permitted"
    if kind == "env":
        assert event.details["variable"] == "LD_PRELOAD"
        assert "/tmp/x.so" not in str(event.details)  # values are not audited
    await relay_env.relay.end_session(sid, "test over")


async def test_relay_refuses_exec_and_audits_the_command(relay_env: RelayEnv, tmp_path) -> None:
    marker = tmp_path / "ran"
    sid, cred = await relay_env.new_session()
    opts = relay_env.ssh_files(sid, cred)
    command = f"touch {marker}; id"
    result = await ssh(opts, *port_args(relay_env, sid), command)
    assert result.returncode != 0
    assert "uid=" not in result.stdout
    assert not marker.exists(), "the command ran"
    event = await relay_env.audit.wait_for("relay.request.refused", sid, kind="exec")
    assert event.details["command"] == command
    await relay_env.relay.end_session(sid, "test over")


async def test_relay_truncates_long_exec_commands_in_the_audit(relay_env: RelayEnv) -> None:
    sid, cred = await relay_env.new_session()
    opts = relay_env.ssh_files(sid, cred)
    await ssh(opts, *port_args(relay_env, sid), "echo " + "A" * 5000)
    event = await relay_env.audit.wait_for("relay.request.refused", sid, kind="exec")
    command = str(event.details["command"])
    assert command.startswith("echo AAAA")
    assert len(command) <= 200
    await relay_env.relay.end_session(sid, "test over")


async def test_relay_refuses_agent_forwarding(relay_env: RelayEnv, tmp_path) -> None:
    # OpenSSH only asks to forward an agent that exists: run a real, empty ssh-agent
    agent_bin = need_tool("ssh-agent")
    sock = tmp_path / "agent.sock"
    agent = await asyncio.create_subprocess_exec(
        agent_bin, "-D", "-a", str(sock), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for _ in range(50):
            if sock.exists():
                break
            await asyncio.sleep(0.05)
        sid, cred = await relay_env.new_session()
        opts = [f"IdentityAgent={sock}" if o == "IdentityAgent=none" else o
                for o in relay_env.ssh_files(sid, cred)]
        result = await ssh(opts, "-A", *port_args(relay_env, sid), "true")
        assert result.returncode != 0
        kinds = await refused_kinds(relay_env, sid, expect="agent_forwarding")
        assert kinds[0] == "agent_forwarding"
        await relay_env.relay.end_session(sid, "test over")
    finally:
        agent.terminate()
        await agent.wait()


async def test_relay_refuses_x11_forwarding(relay_env: RelayEnv) -> None:
    # trusted forwarding (-Y) needs no X server nor xauth: OpenSSH sends a fake cookie
    sid, cred = await relay_env.new_session()
    opts = relay_env.ssh_files(sid, cred)
    need_tool("ssh")
    result = await asyncio.to_thread(
        subprocess.run, ["ssh", *opts, "-Y", *port_args(relay_env, sid), "true"],
        capture_output=True, text=True, timeout=15, stdin=subprocess.DEVNULL,
        env={"PATH": "/usr/bin:/bin", "DISPLAY": ":0", "HOME": str(relay_env.tmp)},
    )
    assert result.returncode != 0
    await refused_kinds(relay_env, sid, expect="x11")
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
    await refused_kinds(relay_env, sid, expect="subsystem:sftp")
    await relay_env.relay.end_session(sid, "test over")


@pytest.mark.parametrize(
    ("legacy", "kind"),
    [(False, "subsystem:sftp"), (True, "exec")],  # scp -O speaks the old protocol over exec
)
async def test_relay_refuses_scp(relay_env: RelayEnv, tmp_path, legacy: bool, kind: str) -> None:
    need_tool("scp")
    sid, cred = await relay_env.new_session()
    opts = relay_env.ssh_files(sid, cred)
    src = tmp_path / "payload"
    src.write_text("not for the relay")
    result = await asyncio.to_thread(
        subprocess.run,
        ["scp", *opts, *(["-O"] if legacy else []), "-P", str(relay_env.relay.port), str(src),
         f"{sid}@127.0.0.1:/tmp/printgate-scp-{sid}"],
        capture_output=True, text=True, timeout=15, stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0
    event = await relay_env.audit.wait_for("relay.request.refused", sid, kind=kind)
    if legacy:
        assert str(event.details["command"]).startswith("scp ")
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
