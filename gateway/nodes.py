"""This process as a node of the gateway (issue 18, docs/scale-out.md).

``NodeLease`` registers the node in the shared database (``printgate.store.nodes``), renews its
lease in a supervised loop, takes over nodes whose lease ran out (``take_over``: the broker ends
their sessions, audited), keeps the record of which agents' command streams this node holds
(hub presence, reconciled on every renewal) and, on a stop, says ``draining`` then ``stopped``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from printgate.errors import ConfigError
from printgate.lifecycle import Service
from printgate.logs import get_logger
from printgate.proc import pid_alive
from printgate.store import nodes
from printgate.store.db import Database
from printgate.supervisor import Supervisor

log = get_logger("gateway.nodes")

TakeOver = Callable[[], Awaitable[list[str]]]


class NodeLease(Service):
    """``async with NodeLease(...)``: registered on entry (after waiting out a previous process of
    the same node id on another host), ``stopped`` on exit. ``online_agents``: the agents whose
    command stream this process holds now."""

    def __init__(self, db: Database, node_id: str, addresses: nodes.NodeAddresses, *,
                 lease_s: float, renew_s: float, take_over: TakeOver,
                 online_agents: Callable[[], set[str]] = set, supervisor: Supervisor | None = None,
                 on_lease_lost: TakeOver | None = None,
                 on_renewed: Callable[[], Awaitable[None]] | None = None,
                 on_stream_taken: Callable[[str, str], Awaitable[None]] | None = None,
                 cut_stream: Callable[[str], object] | None = None,
                 key_ids: Callable[[], dict[str, str]] | None = None,
                 has_stream: Callable[[str], bool] | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.node_id = node_id
        self.incarnation = secrets.token_hex(8)
        self._db = db
        self._addresses = addresses
        self._lease = timedelta(seconds=lease_s)
        self._renew_s = renew_s
        self._take_over = take_over
        self._on_lease_lost = on_lease_lost  # the broker ends what the taker ended in the store
        self._online_agents = online_agents
        self._on_renewed = on_renewed  # the node command bus re-reads what a lost NOTIFY did not say
        self._on_stream_taken = on_stream_taken  # (agent, other live node): it must cut its older stream
        self._cut_stream = cut_stream  # cut this node's stream of an agent a live node holds a newer one of
        self._has_stream = has_stream  # a gRPC command stream here (MQTT presence is seen by every node alike)
        self._key_ids = key_ids  # the ids of the keys this node uses (all nodes must share them)
        self._recorded_keys: dict[str, str] | None = None
        self._supervisor = supervisor
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.lease_lost = False  # another node took this one over while it could not renew
        self.state = "starting"
        self._closing = False

    async def start(self) -> None:
        await self._wait_out_previous()
        keys = await self._check_keys()
        async with self._db.transaction() as s:
            await nodes.register(s, self.node_id, host=socket.gethostname(), pid=os.getpid(),
                                 incarnation=self.incarnation, addresses=self._addresses,
                                 lease=self._lease, now=self._clock(), key_ids=keys)
        self._recorded_keys = keys
        self.state = nodes.ACTIVE
        log.info("node.registered", node=self.node_id, relay=self._addresses.relay, proxy=self._addresses.proxy,
                 channel=self._addresses.channel, lease_s=self._lease.total_seconds())
        if self._supervisor is not None:
            self._supervisor.add("node-lease", self._run)
        else:
            self._task = asyncio.create_task(self._run(), name="node-lease")

    async def _check_keys(self) -> dict[str, str] | None:
        """This node's key ids, refused (ConfigError) when a live node records others: agents would
        refuse this node's trust set and commands, its relay credentials and audit checkpoints would
        not verify elsewhere. A difference is read again after one renewal (a rotation in the shared
        directory another node has not recorded yet)."""
        if self._key_ids is None:
            return None
        mine = self._key_ids()
        for attempt in range(2):
            async with self._db.session() as s:
                others = [n for n in await nodes.list_nodes(s) if n.id != self.node_id]
            differing = nodes.differing_keys(mine, others, self._clock())
            if not differing:
                return mine
            if attempt == 0:
                log.warning("node.keys_differ", node=self.node_id, nodes=sorted(differing),
                            hint="reading again after one renewal (a key rotation in progress?)")
                await asyncio.sleep(min(self._renew_s + 1.0, 30.0))
                mine = self._key_ids()
        which = "; ".join(f"{use}: this node {mine[use]}, node {other} {theirs}"
                          for other, diff in sorted(differing.items()) for use, theirs in sorted(diff.items()))
        raise ConfigError(
            f"gateway node {self.node_id} uses other keys than the live node(s) {', '.join(sorted(differing))} "
            f"({which}). Every node must use the same keys: point [gateway] key_dir at the shared key directory "
            "(the agent CA, command-signing key, relay CA, relay host key and audit key of the first node; "
            "docs/scale-out.md \"Keys\"), delete the keys this node created for itself, and start it again")

    async def _record_keys(self) -> None:
        if self._key_ids is None:
            return
        keys = self._key_ids()
        if keys == self._recorded_keys:
            return
        async with self._db.transaction() as s:
            await nodes.record_key_ids(s, self.node_id, incarnation=self.incarnation, key_ids=keys)
        self._recorded_keys = keys

    async def _wait_out_previous(self) -> None:
        """A live row of this node id from another process: the same id on another live process
        is refused (it would end that node's sessions); a dead process's lease is waited out."""
        async with self._db.session() as s:
            prior = await nodes.get_node(s, self.node_id)
        now = self._clock()
        if prior is None or not prior.is_live(now):
            return
        if prior.host == socket.gethostname() and pid_alive(prior.pid) and prior.pid != os.getpid():
            raise ConfigError(f"gateway node id {self.node_id!r} is in use by process {prior.pid} on this host; "
                              "give each node its own gateway.node_id (or data directory)")
        if prior.host == socket.gethostname():
            return  # this node's previous process died: its leftovers are reaped at start-up
        deadline = asyncio.get_running_loop().time() + 2 * self._lease.total_seconds()
        log.warning("node.waiting_for_lease", node=self.node_id, held_by=prior.host,
                    until=prior.lease_expires_at.isoformat())
        while asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(min(1.0, self._renew_s))
            async with self._db.session() as s:
                current = await nodes.get_node(s, self.node_id)
            if current is None or not current.is_live(self._clock()):
                return
        raise ConfigError(f"gateway node id {self.node_id!r} is renewed by a live process on {prior.host}; "
                          "give each node its own gateway.node_id")

    async def _run(self) -> None:
        while True:
            await self.tick()
            await asyncio.sleep(self._renew_s)

    async def tick(self) -> None:
        """One renewal: extend the lease, reconcile the agent streams held here, take over
        nodes whose lease ran out."""
        if self._closing:
            return
        now = self._clock()
        async with self._db.transaction() as s:
            ok = await nodes.renew(s, self.node_id, incarnation=self.incarnation, lease=self._lease, now=now)
        if not ok:
            if not self.lease_lost:
                log.error("node.lease_lost", node=self.node_id,
                          hint="another node took this node over (its lease ran out: database unreachable "
                               "or process paused); its sessions were ended there. Registering again.")
            self.lease_lost = True
            async with self._db.transaction() as s:
                await nodes.register(s, self.node_id, host=socket.gethostname(), pid=os.getpid(),
                                     incarnation=self.incarnation, addresses=self._addresses,
                                     lease=self._lease, now=now, key_ids=self._recorded_keys)
            if self._on_lease_lost is not None:
                ended = await self._on_lease_lost()
                log.error("node.sessions_ended_after_lease_lost", node=self.node_id, sessions=len(ended))
        try:
            await self._record_keys()  # a rotation in the shared key directory: recorded at once
        except Exception as exc:
            log.warning("node.keys_not_recorded", node=self.node_id, error=str(exc))
        try:
            await self.reconcile_streams()
        except Exception as exc:  # a bookkeeping failure must not stop the taking-over below
            log.warning("node.streams_not_reconciled", node=self.node_id, error=str(exc))
        await self._take_over()
        if self._on_renewed is not None:
            try:
                await self._on_renewed()
            except Exception as exc:  # the next renewal reads again
                log.warning("node.renewal_hook_failed", node=self.node_id, error=str(exc))

    async def reconcile_streams(self) -> None:
        """Record the streams held here that the registry misses (a lost write, a lease lost and taken
        back), never over a newer holder: an agent another live node holds now is cut here instead
        (its newer connection won; two streams of one agent would flip the record on every renewal)."""
        online = self._online_agents()
        async with self._db.transaction() as s:
            recorded = await nodes.streams_of(s, self.node_id)
            elsewhere = (await nodes.streams_claimed(s, sorted(online - recorded), self.node_id, self._clock())
                         if online - recorded else set())
            if recorded - online:
                await nodes.streams_closed(s, sorted(recorded - online), self.node_id)
        for agent_id in sorted(elsewhere):
            if self._cut_stream is not None and self._cut_stream(agent_id):
                log.warning("node.stream_held_elsewhere", node=self.node_id, agent=agent_id,
                            hint="another live node holds a newer stream of this agent: the one here was cut")

    async def presence(self, agent_id: str, online: bool) -> None:
        """Hub presence listener: record at once which node holds the agent's stream; a stream of the
        agent another live node held until now is that node's to cut (the newest connection wins)."""
        async with self._db.transaction() as s:
            if online and (self._has_stream is None or self._has_stream(agent_id)):
                prior = await nodes.stream_taken(s, agent_id, self.node_id, self._clock())
            elif online:  # MQTT presence only: recorded here if no live node holds the agent
                prior = None
                await nodes.streams_claimed(s, [agent_id], self.node_id, self._clock())
            else:
                prior = None
                await nodes.stream_closed(s, agent_id, self.node_id)
        if prior is not None and self._on_stream_taken is not None:
            await self._on_stream_taken(agent_id, prior)

    async def drain(self) -> None:
        """SIGTERM: no longer a node to send new work to (the lease is kept while sessions end)."""
        await self._set(nodes.DRAINING)

    async def aclose(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._set(nodes.STOPPED)

    async def _set(self, state: str) -> None:
        if self.state in ("starting", nodes.STOPPED) or self.state == state:
            return
        try:
            async with self._db.transaction() as s:
                await nodes.set_state(s, self.node_id, state, incarnation=self.incarnation, now=self._clock())
        except Exception as exc:  # the database away at shutdown: the lease runs out instead
            log.warning("node.state_not_saved", node=self.node_id, state=state, error=str(exc))
            return
        self.state = state
        log.info("node.state", node=self.node_id, state=state)
