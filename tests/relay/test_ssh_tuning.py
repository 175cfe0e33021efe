"""Empty SSH_MSG_IGNORE padding is dropped on AEAD connections (relay and agent sides)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncssh
import pytest

from printgate.net.ssh_tuning import drop_empty_ignore_packets
from tests.relay.conftest import RelayEnv

pytestmark = pytest.mark.timeout(30)
MSG_IGNORE = 2


async def sent_packet_types(env: RelayEnv, drop: Callable[[Any], None] | None) -> list[int]:
    """Packet types a client sends for one (refused) exec, seen below asyncssh's own send_packet."""
    sid, cred = await env.new_session()
    conn = await asyncssh.connect(
        "127.0.0.1", env.relay.port, username=sid, known_hosts=None, config=None, gss_host=None,
        client_keys=[(asyncssh.import_private_key(cred.private_key),
                      asyncssh.import_certificate(cred.certificate))],
        agent_path=None, encryption_algs=["aes128-gcm@openssh.com"],
    )
    seen: list[int] = []
    inner = conn.send_packet

    def spy(pkttype: int, *args: bytes, **kwargs: Any) -> None:
        seen.append(pkttype)
        inner(pkttype, *args, **kwargs)

    conn.send_packet = spy  # type: ignore[method-assign]
    if drop is not None:
        drop(conn)
    async with conn:
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.create_session(asyncssh.SSHClientSession, command="true")
    await env.relay.end_session(sid, "test over")
    return seen


async def test_asyncssh_pads_every_packet_with_an_ignore_by_default(relay_env: RelayEnv) -> None:
    seen = await sent_packet_types(relay_env, None)
    assert seen.count(MSG_IGNORE) >= 2  # the premise of the tuning; if asyncssh drops it, so can we


async def test_empty_ignore_packets_are_not_sent_on_aead_connections(relay_env: RelayEnv) -> None:
    seen = await sent_packet_types(relay_env, drop_empty_ignore_packets)
    assert MSG_IGNORE not in seen
    assert len(seen) >= 3  # channel open, exec request, close still go out
