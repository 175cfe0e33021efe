"""A malicious relay (holding the pinned host key) tries to steer the agent anywhere but its target.

The relay here is our own asyncssh server: it accepts the agent's certificate,
answers its remote-forward request, then opens ``forwarded-tcpip`` channels
naming other destinations and originators, and tries direct-tcpip, session,
X11, agent and Unix-socket channels towards the agent. A decoy listener on
loopback proves the agent never connects anywhere but the session target.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncssh
import pytest
from asyncssh.packet import String, UInt32

from agent.tunnel import Tunnel, open_tunnel
from gateway.relay import SshCertificateAuthority
from tests.relay.conftest import Ews

pytestmark = pytest.mark.timeout(60)

ROGUE_PORT_CLAIM = 40404  # the port the rogue relay tells the agent its forward got


class _FakeListener(asyncssh.SSHListener):
    def get_port(self) -> int:
        return ROGUE_PORT_CLAIM

    def close(self) -> None:
        return None

    async def wait_closed(self) -> None:
        return None


@dataclass
class RogueRelay:
    conn: asyncssh.SSHServerConnection | None = None
    forward: asyncio.Event = field(default_factory=asyncio.Event)
    forward_host: str = ""
    reported: list[tuple[str, str]] = field(default_factory=list)  # what the agent would report


class _RogueServer(asyncssh.SSHServer):
    def __init__(self, state: RogueRelay) -> None:
        self._state = state

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._state.conn = conn

    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_ca_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return True  # any certificate: this relay only wants the agent's tunnel

    def server_requested(self, listen_host: str, listen_port: int) -> asyncssh.SSHListener:
        self._state.forward_host = listen_host
        self._state.forward.set()
        return _FakeListener()


@dataclass
class Decoy:
    """Somewhere on the customer's network the relay would like to reach."""

    host: str
    port: int
    connections: int = 0


@pytest.fixture
async def decoy() -> AsyncIterator[Decoy]:
    d = Decoy("127.0.0.1", 0)

    def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        d.connections += 1
        writer.write(b"HTTP/1.0 200 OK\r\n\r\nDECOY")
        writer.close()

    server = await asyncio.start_server(accepted, "127.0.0.1", 0)
    d.port = int(server.sockets[0].getsockname()[1])
    yield d
    server.close()
    await server.wait_closed()


@pytest.fixture
async def rogue_tunnel(ews: Ews) -> AsyncIterator[tuple[RogueRelay, Tunnel]]:
    state = RogueRelay()
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    acceptor = await asyncssh.listen(
        "127.0.0.1", 0, server_factory=lambda: _RogueServer(state), server_host_keys=[host_key],
        config=None, gss_host=None,
    )
    sid = "5e55104d0000a9e7"
    cred = SshCertificateAuthority(asyncssh.generate_private_key("ssh-ed25519")).issue(
        sid, valid_seconds=300, agent_id="agent-1"
    )
    tunnel = await open_tunnel(
        "127.0.0.1", acceptor.get_port(),
        host_key_fingerprint=host_key.get_fingerprint("sha256"),
        credential_private_key=cred.private_key, credential_certificate=cred.certificate,
        session_id=sid, target=ews.target, verify=None,
        on_refused=lambda kind, detail: state.reported.append((kind, detail)),
    )
    await asyncio.wait_for(state.forward.wait(), 5)
    try:
        yield state, tunnel
    finally:
        await tunnel.aclose()
        acceptor.close()
        await acceptor.wait_closed()


async def http_get(conn: asyncssh.SSHServerConnection, listen_host: str, listen_port: int,
                   orig_host: str, orig_port: int) -> bytes:
    reader, writer = await conn.open_connection(listen_host, listen_port, orig_host, orig_port)
    writer.write(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
    writer.write_eof()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return data


async def test_agent_connects_forwarded_channels_only_to_the_session_target(
    rogue_tunnel: tuple[RogueRelay, Tunnel], decoy: Decoy
) -> None:
    rogue, tunnel = rogue_tunnel
    conn = rogue.conn
    assert conn is not None
    # the forward's own listener, but the relay names the decoy as originator
    page = await http_get(conn, rogue.forward_host, ROGUE_PORT_CLAIM, decoy.host, decoy.port)
    assert b"printer status" in page
    # the forward's host with the decoy's port (asyncssh matches dynamic forwards by host)
    page = await http_get(conn, rogue.forward_host, decoy.port, decoy.host, decoy.port)
    assert b"printer status" in page
    assert tunnel.forwarded_connections == 2
    # a forward the agent never asked for, naming the decoy as its address
    with pytest.raises(asyncssh.ChannelOpenError):
        await http_get(conn, decoy.host, decoy.port, "203.0.113.9", 1)
    assert decoy.connections == 0
    assert tunnel.refused_channels[0][0] == "forwarded-tcpip"
    assert f"{decoy.host}:{decoy.port}" in tunnel.refused_channels[0][1]


async def test_agent_refuses_channels_a_rogue_relay_opens_towards_it(
    rogue_tunnel: tuple[RogueRelay, Tunnel], decoy: Decoy, tmp_path
) -> None:
    rogue, tunnel = rogue_tunnel
    conn = rogue.conn
    assert conn is not None
    with pytest.raises(asyncssh.ChannelOpenError):  # direct-tcpip: "connect to the decoy for me"
        await conn.create_tcp_channel().connect(asyncssh.SSHTCPSession, decoy.host, decoy.port, "", 0)
    with pytest.raises(asyncssh.ChannelOpenError):
        await conn.create_unix_channel().connect(asyncssh.SSHUNIXSession, str(tmp_path / "docker.sock"))
    raw = [  # no public API opens these from a server: use the channel's open primitive
        (b"session", ()),
        (b"x11", (String("127.0.0.1"), UInt32(6000))),
        (b"auth-agent@openssh.com", ()),
    ]
    for chantype, args in raw:
        with pytest.raises(asyncssh.ChannelOpenError) as exc:
            await conn.create_tcp_channel()._open(chantype, *args)
        assert exc.value.code == asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED
    assert decoy.connections == 0
    assert [kind for kind, _ in tunnel.refused_channels] == [
        "direct-tcpip", "direct-streamlocal@openssh.com", "session", "x11", "auth-agent@openssh.com",
    ]
    assert tunnel.forwarded_connections == 0
    assert rogue.reported == tunnel.refused_channels  # each refusal goes to the runtime for the audit
    assert not tunnel.is_closed  # refusing is enough; the legitimate tunnel stays usable
    page = await http_get(conn, rogue.forward_host, ROGUE_PORT_CLAIM, "127.0.0.1", 5)
    assert b"printer status" in page
