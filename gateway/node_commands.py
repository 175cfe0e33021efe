"""Commands between gateway nodes over PostgreSQL ``LISTEN/NOTIFY`` (issue 18, docs/scale-out.md
"Cross-node commands").

``NodeCommandBus.request(target, kind, payload)`` runs ``kind``'s handler on ``target`` and returns
its result: locally (no row) when ``target`` is this node; otherwise a ``node_commands`` row and a
``NOTIFY`` on the target's channel in one transaction, and a wait for the result row (woken by the
target's ``NOTIFY`` back). ``fan_out`` sends one command per agent to the nodes holding their
streams: one batch, one notification per node, one result notification per node and batch.

One dedicated asyncpg connection per node listens on ``printgate_node_<id>``. A notification can
be lost (the connection broke, the node was away): pending commands are re-read when the node
listens again and on every lease renewal (``poll``), and so are the results this node waits for,
so a lost notification costs latency only. A command runs exactly once: claiming is a
conditional update (``printgate.store.node_commands.claim``). SQLite or one node: the same
interface, local delivery only.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.errors import NodeCommandFailed, NodeUnavailable
from printgate.domain import AuditEventIn, Outcome, event_types
from printgate.errors import PrintgateError
from printgate.interfaces import AuditSink
from printgate.lifecycle import Service
from printgate.logs import get_logger
from printgate.store import node_commands as store
from printgate.store import nodes
from printgate.store.db import Database
from printgate.supervisor import Supervisor

log = get_logger("gateway.node_commands")

Handler = Callable[[dict[str, Any], str | None], Awaitable[dict[str, Any]]]
"""``(payload, agent_id) -> result``; raise ``PrintgateError`` for a failure the requester sees."""
MAX_CONCURRENT = 256  # commands of one node running at once (each a few awaits; a session set-up seconds)
KEEP_FINISHED = timedelta(hours=1)  # finished rows kept this long (then purged on a renewal)


@dataclass(frozen=True, slots=True)
class AgentResult:
    """One agent's outcome in a fan-out: ``ok`` with the handler's result, or the error."""

    agent_id: str
    node: str | None
    ok: bool
    result: dict[str, Any] | None = None
    error: str | None = None


class NodeCommandBus(Service):
    """``async with NodeCommandBus(...)``: listening (PostgreSQL) and draining pending commands.

    ``handlers``: kind → handler run here when another node (or this one) asks."""

    def __init__(self, db: Database, node_id: str, *, audit: AuditSink | None = None,
                 handlers: Mapping[str, Handler] | None = None, supervisor: Supervisor | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 listen: bool = True) -> None:
        self.node_id = node_id
        self._db = db
        self._audit = audit
        self._handlers: dict[str, Handler] = dict(handlers or {})
        self._supervisor = supervisor
        self._clock = clock
        self._listen = listen and db.dialect == "postgresql"
        self._waiters: dict[str, asyncio.Future[store.Finished]] = {}  # command id -> its outcome
        self._batches: dict[str, set[str]] = {}  # batch id -> command ids still awaited here
        self._wake = asyncio.Event()
        self._listening = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(MAX_CONCURRENT)
        self._tasks: list[asyncio.Task[None]] = []
        self._drain_lock = asyncio.Lock()
        self.executed: list[str] = []  # ids of commands this bus ran (bounded; tests and metrics)
        self.notifications = 0  # notifications received (tests)
        self.listens = 0  # times this node started listening (a lost connection: one more)

    def handle(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    @property
    def distributed(self) -> bool:
        """True when other nodes can reach this one (PostgreSQL); False: local delivery only."""
        return self._listen

    # ---- lifecycle -------------------------------------------------------
    async def start(self) -> None:
        if not self._listen:
            return
        if self._supervisor is not None:  # restarted with back-off when it fails, health in /readyz
            self._supervisor.add("node-commands-listen", self._listen_loop)
            self._supervisor.add("node-commands-drain", self._drain_loop)
        else:
            self._tasks.append(asyncio.create_task(self._listen_again(), name="node-commands-listen"))
            self._tasks.append(asyncio.create_task(self._drain_loop(), name="node-commands-drain"))
        async with asyncio.timeout(15):
            await self._listening.wait()

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(NodeUnavailable(f"gateway node {self.node_id} is stopping"))
        self._waiters.clear()

    async def _listen_again(self) -> None:
        """Without a supervisor: listen, and after a lost connection listen again (back-off)."""
        delay = 0.2
        while True:
            try:
                await self._listen_loop()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("node.commands.listen_lost", node=self.node_id, error=str(exc), retry_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _listen_loop(self) -> None:
        """One dedicated connection LISTENing on this node's channel; on (re)listen, a re-read of
        the commands and results that may have been notified while nobody listened."""
        import asyncpg  # PostgreSQL only

        url = self._db.engine.url.set(drivername="postgresql")
        conn = await asyncpg.connect(url.render_as_string(hide_password=False))
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _c: lost.set())
            await conn.add_listener(store.channel_of(self.node_id), self._notified)
            log.info("node.commands.listening", node=self.node_id, channel=store.channel_of(self.node_id))
            self._listening.set()
            self.listens += 1
            await self.poll()  # anything sent while this node was not listening
            while not lost.is_set():  # a broken connection ends the wait; the supervisor reconnects
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5):
                        await lost.wait()
                if not lost.is_set():
                    await conn.execute("SELECT 1")  # a half-open connection raises here
            raise ConnectionError("the LISTEN connection to PostgreSQL was lost")
        finally:
            self._listening.clear()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.notifications += 1
        kind, _, ident = payload.partition(":")
        if kind == "c" or (kind == "b" and ident not in self._batches):
            self._wake.set()  # commands for this node
        if kind == "r" or (kind == "b" and ident in self._batches):
            task = asyncio.get_running_loop().create_task(self._collect(ident if kind == "r" else None,
                                                                        ident if kind == "b" else None))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _drain_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.drain()

    # ---- executing commands for other nodes ------------------------------
    async def poll(self) -> None:
        """Re-read: claim and run pending commands for this node, collect outcomes this node
        waits for (run on every lease renewal and on every (re)listen). One node (SQLite): nothing."""
        if not self._listen:
            return
        await self.drain()
        await self._collect(None, None, everything=True)
        with contextlib.suppress(Exception):  # housekeeping only
            async with self._db.transaction() as s:
                await store.purge(s, self._clock() - KEEP_FINISHED)

    async def drain(self) -> int:
        """Claim this node's pending commands (exactly once) and start running them; how many."""
        async with self._drain_lock:
            async with self._db.transaction() as s:
                claimed = await store.claim(s, self.node_id, self._clock())
        batches: dict[str, list[store.NodeCommand]] = {}
        for command in claimed:
            batches.setdefault(command.batch_id or command.id, []).append(command)
        for group in batches.values():
            task = asyncio.get_running_loop().create_task(self._run_group(group))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        return len(claimed)

    async def _run_group(self, group: list[store.NodeCommand]) -> None:
        outcomes = await asyncio.gather(*(self._run_one(c) for c in group))
        async with self._db.transaction() as s:
            await store.finish(s, outcomes, self._clock())

    async def _run_one(self, command: store.NodeCommand) -> store.Outcome:
        self.executed.append(command.id)
        if len(self.executed) > 20_000:
            del self.executed[:10_000]
        def outcome(ok: bool, result: dict[str, Any] | None = None, error: str | None = None) -> store.Outcome:
            return store.Outcome(id=command.id, from_node=command.from_node, batch_id=command.batch_id, ok=ok,
                                 result=result, error=error)

        handler = self._handlers.get(command.kind)
        if handler is None:
            return outcome(ok=False, error=f"gateway node {self.node_id} has no handler for "
                           f"{command.kind!r} commands (an older version?)")
        if self._clock() >= command.deadline:
            return outcome(ok=False, error="claimed after its deadline: not run")
        try:
            async with self._slots:
                result = await handler(command.payload, command.agent_id)
        except PrintgateError as exc:
            return outcome(ok=False, error=exc.message)
        except Exception as exc:  # the requester gets an answer whatever failed here
            log.warning("node.command_failed", id=command.id, kind=command.kind, error=str(exc))
            return outcome(ok=False, error=f"{type(exc).__name__}: {exc}")
        return outcome(ok=True, result=result)

    # ---- asking other nodes -------------------------------------------------
    async def request(self, target: str, kind: str, payload: dict[str, Any], *, timeout_s: float,
                      agent_id: str | None = None, what: str | None = None) -> dict[str, Any]:
        """Run ``kind`` on ``target``; its result. ``NodeCommandFailed``: it answered with a failure;
        ``NodeUnavailable``: it did not answer within ``timeout_s`` (audited)."""
        if target == self.node_id:
            return await self._local(kind, payload, agent_id)
        if not self._listen:
            raise NodeUnavailable(f"gateway node {target} cannot be reached from node {self.node_id}: "
                                  "cross-node commands need PostgreSQL (this node runs on SQLite, alone)")
        now = self._clock()
        command = store.NewCommand(id=secrets.token_hex(16), target_node=target, from_node=self.node_id,
                                   kind=kind, payload=payload, agent_id=agent_id,
                                   deadline=now + timedelta(seconds=timeout_s))
        waiter: asyncio.Future[store.Finished] = asyncio.get_running_loop().create_future()
        self._waiters[command.id] = waiter
        try:
            async with self._db.transaction() as s:
                await store.enqueue(s, [command], now)
            async with asyncio.timeout(timeout_s):
                outcome = await waiter
        except asyncio.CancelledError:  # the asker went away (a browser gave up): do not run it later
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2), self._db.transaction() as s:
                    await store.expire(s, [command.id], self._clock())
            raise
        except TimeoutError:
            async with self._db.transaction() as s:
                await store.expire(s, [command.id], self._clock())
            subject = what or (f"agent {agent_id}'s connection" if agent_id else f"the {kind} command")
            message = (f"the node holding {subject} ({target}) did not answer within {timeout_s:g} s: "
                       "it may be overloaded, paused or cut off from the database; try again, and if it "
                       "keeps failing the node is taken over once its lease runs out")
            await self._audit_timeout(target, kind, agent_id, timeout_s, command.id, message)
            raise NodeUnavailable(message) from None
        finally:
            self._waiters.pop(command.id, None)
        if outcome.state != store.DONE:
            raise NodeCommandFailed(outcome.error or f"gateway node {target} could not run {kind}")
        return outcome.result or {}

    async def _local(self, kind: str, payload: dict[str, Any], agent_id: str | None) -> dict[str, Any]:
        handler = self._handlers.get(kind)
        if handler is None:
            raise NodeCommandFailed(f"gateway node {self.node_id} has no handler for {kind!r} commands")
        try:
            return await handler(payload, agent_id)
        except PrintgateError as exc:
            raise NodeCommandFailed(exc.message) from exc

    async def fan_out(self, kind: str, payloads: Mapping[str, dict[str, Any]], *, timeout_s: float,
                      actor: str = "gateway") -> dict[str, AgentResult]:
        """One ``kind`` command per agent (agent id → payload), each run by the node holding the
        agent's stream: one batch id, one row per agent, one notification per node; the agents of
        this node run here. Per-agent outcomes; an agent with no stream anywhere is ``offline``;
        the agents of a node that did not answer in time fail with that. Audited once per batch."""
        batch_id = secrets.token_hex(16)
        agents = list(payloads)
        async with self._db.session() as s:
            holders = await nodes.stream_nodes(s, agents)
        results: dict[str, AgentResult] = {
            a: AgentResult(a, None, False, error=f"agent {a} is offline (no command stream on any gateway node)")
            for a in agents if a not in holders}
        remote = {a: n for a, n in holders.items() if n != self.node_id}
        local = [a for a, n in holders.items() if n == self.node_id]
        now = self._clock()
        commands = [store.NewCommand(id=secrets.token_hex(16), target_node=node, from_node=self.node_id, kind=kind,
                                     payload=payloads[a], agent_id=a, batch_id=batch_id,
                                     deadline=now + timedelta(seconds=timeout_s))
                    for a, node in remote.items()] if self._listen else []
        if remote and not self._listen:
            results |= {a: AgentResult(a, n, False, error=f"gateway node {n} cannot be reached (SQLite: one node)")
                        for a, n in remote.items()}
        waiters = {c.id: asyncio.get_running_loop().create_future() for c in commands}
        by_id = {c.id: c for c in commands}
        self._waiters.update(waiters)
        if commands:
            self._batches[batch_id] = set(waiters)
        try:
            if commands:
                async with self._db.transaction() as s:
                    await store.enqueue(s, commands, now)

            async def run_local(agent: str) -> None:
                try:
                    results[agent] = AgentResult(agent, self.node_id, True,
                                                 result=await self._local(kind, payloads[agent], agent))
                except NodeCommandFailed as exc:
                    results[agent] = AgentResult(agent, self.node_id, False, error=exc.message)

            async def remote_done() -> None:
                if waiters:
                    await asyncio.wait(list(waiters.values()), timeout=timeout_s)

            await asyncio.gather(remote_done(), *(run_local(a) for a in local))
            late = [cid for cid, w in waiters.items() if not w.done()]
            if late:
                async with self._db.transaction() as s:
                    await store.expire(s, late, self._clock())
            for cid, waiter in waiters.items():
                c = by_id[cid]
                assert c.agent_id is not None
                if waiter.done() and not waiter.cancelled():
                    o = waiter.result()
                    results[c.agent_id] = AgentResult(c.agent_id, c.target_node, o.state == store.DONE,
                                                      result=o.result, error=o.error)
                else:
                    results[c.agent_id] = AgentResult(
                        c.agent_id, c.target_node, False,
                        error=f"the node holding agent {c.agent_id}'s connection ({c.target_node}) did not "
                              f"answer within {timeout_s:g} s")
        finally:
            for cid in waiters:
                self._waiters.pop(cid, None)
            self._batches.pop(batch_id, None)
        per_node: dict[str, int] = {}
        for n in holders.values():
            per_node[n] = per_node.get(n, 0) + 1
        ok = sum(1 for r in results.values() if r.ok)
        offline = len(agents) - len(holders)
        if self._audit is not None:
            await self._audit.append(AuditEventIn(
                type=event_types.GATEWAY_NODE_FANOUT, outcome=Outcome.SUCCESS if ok == len(agents) else Outcome.FAILURE,
                actor=actor, details={"node": self.node_id, "batch_id": batch_id, "kind": kind, "agents": len(agents),
                                      "per_node": per_node, "ok": ok, "failed": len(agents) - ok - offline,
                                      "offline": offline}))
        return results

    async def _collect(self, command_id: str | None, batch_id: str | None, *, everything: bool = False) -> None:
        """Settle the waiters whose outcome is in the store (one command, one batch, or all)."""
        if command_id is not None:
            wanted = [command_id] if command_id in self._waiters else []
        elif batch_id is not None:
            wanted = [batch_id] if self._batches.get(batch_id) else []
        else:
            wanted = list(self._waiters) if everything else []
        if not wanted:
            return
        try:
            async with self._db.session() as s:
                if batch_id is not None:
                    found = await store.finished_of_batch(s, batch_id, from_node=self.node_id)
                else:
                    found = await store.finished(s, wanted)
        except Exception as exc:  # the next notification or renewal reads again
            log.warning("node.commands.collect_failed", node=self.node_id, error=str(exc))
            return
        for outcome in found:
            waiter = self._waiters.get(outcome.id)
            if waiter is not None and not waiter.done():
                waiter.set_result(outcome)
            if outcome.batch_id is not None and outcome.batch_id in self._batches:
                self._batches[outcome.batch_id].discard(outcome.id)

    async def _audit_timeout(self, target: str, kind: str, agent_id: str | None, timeout_s: float,
                             command_id: str, message: str) -> None:
        log.warning("node.command_timed_out", node=self.node_id, target=target, kind=kind, agent=agent_id,
                    timeout_s=timeout_s)
        if self._audit is not None:
            await self._audit.append(AuditEventIn(
                type=event_types.GATEWAY_NODE_COMMAND_TIMED_OUT, outcome=Outcome.FAILURE, actor="gateway",
                details={"node": self.node_id, "target_node": target, "kind": kind, "agent_id": agent_id,
                         "timeout_s": timeout_s, "command_id": command_id, "reason": message}))
