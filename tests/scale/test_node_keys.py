"""Issue 18 finding 5, both backends: a node records the ids of its keys in the registry; a node whose
keys differ from a live node's is refused at start with the differing keys and the key_dir fix named;
a rotation in the shared key directory is recorded on the next renewal (so it never refuses a node)."""

from __future__ import annotations

import pytest

from gateway.nodes import NodeLease
from printgate.errors import ConfigError
from printgate.store import nodes
from printgate.store.db import Database
from printgate.supervisor import Supervisor

ADDR = nodes.NodeAddresses("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3")
SHARED = {"agent-ca": "ca1", "audit": "au1", "command-signing": "cs1", "relay-ca": "rc1", "relay-host-key": "hk1"}


def _lease(db: Database, node_id: str, keys: dict[str, str]) -> NodeLease:
    async def nothing() -> list[str]:
        return []
    return NodeLease(db, node_id, ADDR, lease_s=30, renew_s=0.1, take_over=nothing, supervisor=Supervisor("test"),
                     key_ids=lambda: dict(keys))


async def _keys_of(db: Database, node_id: str) -> dict[str, str] | None:
    async with db.session() as s:
        node = await nodes.get_node(s, node_id)
    assert node is not None
    return node.key_ids


async def test_a_node_with_other_keys_is_refused_and_one_with_the_shared_keys_joins(db: Database) -> None:
    first_keys = dict(SHARED)
    async with _lease(db, "n1", first_keys) as first:
        assert await _keys_of(db, "n1") == SHARED
        own = {**SHARED, "command-signing": "cs-own", "relay-host-key": "hk-own"}  # its own key_dir
        with pytest.raises(ConfigError) as refused:
            async with _lease(db, "n2", own):
                pass
        message = refused.value.message
        assert "command-signing: this node cs-own, node n1 cs1" in message and "hk-own" in message
        assert "key_dir" in message and "agent-ca" not in message.split("(")[1].split(")")[0]
        async with _lease(db, "n3", SHARED):
            assert await _keys_of(db, "n3") == SHARED

        first_keys["command-signing"] = "cs2"  # `printgate keys rotate command-signing` on the shared directory
        await first.tick()
        assert await _keys_of(db, "n1") == {**SHARED, "command-signing": "cs2"}
        async with _lease(db, "n4", {**SHARED, "command-signing": "cs2"}):
            pass
