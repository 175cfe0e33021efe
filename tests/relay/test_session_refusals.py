"""Session-channel requests from a scripted asyncssh client: named refusals, bounded audit, no data."""

from __future__ import annotations

import asyncio

import asyncssh
import pytest

from gateway.relay.policy import MAX_COMMAND_CHARS, refuse_channel_request
from gateway.relay.ssh_ca import SessionCredential
from tests.relay.conftest import RelayEnv

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("request_name", "argument", "kind", "detail"),
    [
        ("shell", None, "shell", {}),
        ("exec", "id", "exec", {"command": "id"}),
        ("exec", "rm -rf /\x1b[2J", "exec", {"command": "rm -rf /\\x1b[2J"}),
        ("subsystem", "sftp", "subsystem:sftp", {}),
        ("pty-req", "xterm", "pty", {"term": "xterm"}),
        ("env", "LD_PRELOAD", "env", {"variable": "LD_PRELOAD"}),
        ("auth-agent-req@openssh.com", None, "agent_forwarding", {}),
        ("x11-req", None, "x11", {}),
        ("signal", None, "request:signal", {}),
        ("window-change", None, "request:window-change", {}),
    ],
)
def test_channel_requests_are_refused_by_name(
    request_name: str, argument: str | None, kind: str, detail: dict[str, str]
) -> None:
    refusal = refuse_channel_request(request_name, argument)
    assert refusal.kind == kind
    assert refusal.code == "not_permitted"
    assert dict(refusal.detail) == detail


def test_refused_exec_command_is_truncated_and_control_free() -> None:
    refusal = refuse_channel_request("exec", "\n".join(["x" * 50] * 100))
    command = refusal.detail["command"]
    assert len(command) <= MAX_COMMAND_CHARS
    assert "\n" not in command


async def connect(env: RelayEnv, sid: str, cred: SessionCredential) -> asyncssh.SSHClientConnection:
    return await asyncssh.connect(
        "127.0.0.1", env.relay.port, username=sid, known_hosts=None,
        client_keys=[(asyncssh.import_private_key(cred.private_key),
                      asyncssh.import_certificate(cred.certificate))],
        agent_path=None, config=None, gss_host=None,
    )


class Recorder(asyncssh.SSHClientSession[bytes]):
    def __init__(self) -> None:
        self.received = b""

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self.received += data


async def open_bare_session(conn: asyncssh.SSHClientConnection) -> tuple[asyncssh.SSHClientChannel[bytes], Recorder]:
    """A session channel with no request at all (asyncssh's public API always asks for a shell)."""
    chan: asyncssh.SSHClientChannel[bytes] = asyncssh.SSHClientChannel(
        conn, asyncio.get_running_loop(), "strict", None, "strict", 2**20, 32768
    )
    await chan._open(b"session")
    recorder = Recorder()
    chan._session = recorder
    recorder.connection_made(chan)
    return chan, recorder


async def test_relay_discards_data_on_a_session_channel_and_runs_nothing(relay_env: RelayEnv) -> None:
    sid, cred = await relay_env.new_session()
    async with await connect(relay_env, sid, cred) as conn:
        chan, recorder = await open_bare_session(conn)
        chan.write(b"id\n" * 1000)
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.create_session(asyncssh.SSHClientSession, command="id")
        await asyncio.sleep(0.2)
        assert recorder.received == b""
        assert chan.get_exit_status() is None
        chan.close()
    kinds = [e.details["kind"] for e in relay_env.audit.of("relay.request.refused", sid)]
    assert kinds == ["exec"]
    await relay_env.relay.end_session(sid, "test over")


async def test_relay_closes_a_connection_that_floods_refused_requests(relay_env: RelayEnv) -> None:
    sid, cred = await relay_env.new_session()
    limit = relay_env.relay.limits.max_refusals_per_connection
    env: dict[str | bytes, str | bytes] = {f"VAR{i}": "x" for i in range(limit * 3)}  # pipelined before the refusal arrives
    conn = await connect(relay_env, sid, cred)
    try:
        with pytest.raises((asyncssh.ChannelOpenError, asyncssh.ConnectionLost, asyncssh.DisconnectError)):
            await conn.create_session(asyncssh.SSHClientSession, command="id", env=env)
        await asyncio.wait_for(conn.wait_closed(), 5)
    finally:
        conn.close()
    await relay_env.audit.wait_for("relay.request.refused", sid, code="too_many_refusals")
    refused = relay_env.audit.of("relay.request.refused", sid)
    assert len(refused) == limit + 1
    assert [e.details["kind"] for e in refused[:limit]] == ["env"] * limit
    await relay_env.relay.end_session(sid, "test over")


async def test_relay_bounds_open_session_channels(relay_env: RelayEnv) -> None:
    sid, cred = await relay_env.new_session()
    async with await connect(relay_env, sid, cred) as conn:
        chans = []
        for _ in range(2):
            chan, _r = await open_bare_session(conn)
            chans.append(chan)
        with pytest.raises(asyncssh.ChannelOpenError):
            await open_bare_session(conn)
        await relay_env.audit.wait_for("relay.request.refused", sid, kind="session", code="too_many_channels")
        for chan in chans:
            chan.close()
            await chan.wait_closed()
        chan, _r = await open_bare_session(conn)  # freed again
        chan.close()
    await relay_env.relay.end_session(sid, "test over")
