"""One proxy worker process: a ``DwaProxy`` on the pool's shared port (SO_REUSEPORT).

Started by ``ProxyWorkerPool`` as ``python -m gateway.proxy.worker_process <fd>``
where ``fd`` is this worker's end of the control channel. The first message on
the channel is the configuration (it holds the CSRF key and the database URL, so
it never travels on the command line). The worker keeps a ``ReplicaRouteTable``,
asks the pool for launch-token redemption, end and extend, reports activity in
batches and audits through its own ``AuditLog`` on the pool's database.

It dies with the pool: ``PR_SET_PDEATHSIG`` kills it if the parent dies, and it
stops when the control channel closes.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import socket
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import uvloop

from audit.metered_log import MeteredAuditLog
from gateway.proxy.budgets import Reservation
from gateway.proxy.connection_limits import ConnectionLimits
from gateway.proxy.control_channel import ControlPeer, Message, read_message, route_from_json
from gateway.proxy.limits import ProxyLimits
from gateway.proxy.route_replica import ReplicaRouteTable
from gateway.proxy.server import DwaProxy
from printgate.gc_tuning import tune_for_serving
from printgate.logs import get_logger
from printgate.proc import die_with_parent
from printgate.store.db import Database

log = get_logger(__name__)

def listen_with_reuse_port() -> None:
    """Make every ``asyncio.start_server`` of this process pass ``reuse_port=True``.

    mitmproxy's ``mode_servers`` listens with ``asyncio.start_server(handler, host,
    port)`` and has no option for SO_REUSEPORT, which every worker needs to bind the
    pool's port (the kernel then spreads new connections over the workers). Only
    worker processes call this, and mitmproxy is the only server they run.
    """
    original = asyncio.start_server
    if getattr(original, "_printgate_reuse_port", False):
        return

    @functools.wraps(original)
    async def start_server(*args: Any, **kw: Any) -> asyncio.Server:
        kw.setdefault("reuse_port", True)
        return await original(*args, **kw)

    start_server._printgate_reuse_port = True  # type: ignore[attr-defined]
    asyncio.start_server = start_server


class PoolTally:
    """The session budgets' tally kept by the pool (one for every worker), asked per request."""

    def __init__(self, peer: ControlPeer) -> None:
        self._peer = peer

    async def reserve(self, key: str, size: int, budget: int, window_s: float) -> Reservation:
        answer = await self._peer.ask("budget", timeout_s=5.0, key=key, size=size, budget=budget,
                                      window_s=window_s)
        return Reservation(bool(answer["ok"]), int(answer["used"]), float(answer["resets_at"]))


class Worker:
    def __init__(self, peer: ControlPeer, config: Message) -> None:
        self._peer = peer
        self._config = config
        self.routes = ReplicaRouteTable(
            peer, launch_token_ttl_s=int(config["launch_token_ttl_s"]),
            tombstone_ttl_s=int(config["tombstone_ttl_s"]),
        )
        for item in config["routes"]:
            route = route_from_json(item["route"])
            self.routes.add(route)
            for digest in item["cookies"]:
                self.routes.add_cookie_digest(route.session_id, digest)
        self._db = Database(config["database_url"])
        self.proxy = DwaProxy(
            config["listen_host"], int(config["port"]), dwa_domain=config["dwa_domain"],
            routes=self.routes, audit=MeteredAuditLog(self._db, None), on_end_request=self._end,
            limits=ProxyLimits(**config["limits"]),
            connection_limits=ConnectionLimits(**config["connection_limits"]), on_session_timeout=self._timeout,
            on_extend_request=self._extend, public_scheme=config["public_scheme"],
            public_port=int(config["public_port"]), certs=list(config["certs"]),
            confdir=Path(config["confdir"]) if config["confdir"] else None,
            csrf_key=bytes.fromhex(config["csrf_key"]), portal_url=str(config.get("portal_url", "")),
            budget_tally=PoolTally(peer), node_label=config.get("node_label"),
        )
        self._stop = asyncio.Event()

    # --- callbacks of the proxy: the pool's ---------------------------------
    async def _end(self, session_id: str) -> None:
        await self._peer.ask("end", session_id=session_id)

    async def _timeout(self, session_id: str, reason: str) -> None:
        await self._peer.ask("timeout", session_id=session_id, reason=reason)

    async def _extend(self, session_id: str) -> datetime | None:
        answer = await self._peer.ask("extend", session_id=session_id)
        return datetime.fromisoformat(answer) if answer else None

    # --- what the pool tells this worker ------------------------------------
    async def handle(self, message: Message) -> Any:
        op = message["op"]
        if op == "add":
            self.routes.add(route_from_json(message["route"]))
        elif op == "remove":
            self.routes.remove(message["session_id"], message["reason"])
        elif op == "extend":
            if self.routes.get(message["session_id"]) is not None:
                self.routes.extend(message["session_id"], datetime.fromisoformat(message["expires_at"]))
        elif op == "cookie":
            self.routes.add_cookie_digest(message["session_id"], message["digest"])
        elif op == "ping":
            return os.getpid()
        elif op == "flush":
            await self.proxy.flush_audit()
        elif op == "stop":
            self._stop.set()
        else:
            raise ValueError(f"unknown control op {op!r}")
        return None

    async def _report_activity(self) -> None:
        interval = float(self._config["activity_interval_s"])
        while True:
            await asyncio.sleep(interval)
            seen = self.routes.take_activity()
            if seen:
                self._peer.send({"op": "activity", "sessions": seen})

    async def run(self) -> None:
        serving = asyncio.create_task(self._peer.serve(self.handle), name="dwa-worker-control")
        try:
            await self.proxy.start()
            tune_for_serving()
            self._peer.send({"op": "ready", "port": self.proxy.port, "pid": os.getpid()})
            reporter = asyncio.create_task(self._report_activity(), name="dwa-worker-activity")
            stop = asyncio.create_task(self._stop.wait())
            await asyncio.wait({serving, stop}, return_when=asyncio.FIRST_COMPLETED)
            reporter.cancel()
            stop.cancel()
            seen = self.routes.take_activity()
            if seen:
                self._peer.send({"op": "activity", "sessions": seen})
        finally:
            await self.proxy.aclose()
            await self._db.aclose()
            serving.cancel()
            await self._peer.aclose()


async def main(fd: int) -> None:
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    peer = ControlPeer(reader, writer, "pool")
    config = await read_message(reader)
    if config is None or config.get("op") != "config":
        raise SystemExit("proxy worker: the pool sent no configuration")
    await Worker(peer, config).run()


if __name__ == "__main__":
    die_with_parent()
    listen_with_reuse_port()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the pool stops its workers (Ctrl-C reaches the group)
    # uvloop: about 5-10 % more requests/s per worker (benchmarks/proxy.py); a worker runs
    # nothing but mitmproxy, its audit writer and the control channel
    uvloop.run(main(int(sys.argv[1])))
