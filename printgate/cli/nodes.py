"""`printgate nodes ...`: the gateway nodes sharing the database, and the load balancer's view of
them (issue 18, docs/scale-out.md "Deployment").

``printgate nodes haproxy --out DIR`` writes ``DIR/nodes.cfg`` (HAProxy backends: the portal, the agent
channel and enrolment on every live node, one DWA proxy backend per node) and
``DIR/nodes.map`` (node label → that node's proxy backend, read by ``deploy/haproxy/haproxy.cfg`` to
route a session host ``s-<session>-<label>.<dwa domain>`` to the node that owns the session). Run it
when a node joins or leaves (a restart keeps the node's id, its label and its backend) and reload
HAProxy when it says ``changed``. A node that stopped (or whose lease ran out) keeps its backends
for ``--keep-stopped-minutes`` (15): its health check takes it out, and a rolling restart's
stop → start gap writes the same files (no reload). ``printgate nodes forget ID`` deletes the row of
a node that is gone for good. The relay is not behind HAProxy: SSH carries no host name to route
by, and a node tells its agents the address its relay listens on (``relay_host:relay_port``), so
agents reach the owning node's relay directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer

from printgate.settings import Settings

app = typer.Typer(no_args_is_help=True, help="the gateway nodes sharing this database (scale-out)")

ConfigOpt = typer.Option(None, help="TOML settings file")
DbOpt = typer.Option(None, "--database-url", help="database URL (default: from settings)")
ANY_ADDRESS = ("0.0.0.0", "::", "[::]", "")


@dataclass(frozen=True, slots=True)
class LbNode:
    """One live node as the load balancer reaches it."""

    id: str
    label: str
    portal: str
    proxy: str
    relay: str
    channel: str
    enrol: str


def _reachable(address: str, host: str) -> str:
    """``address`` (host:port from the registry) with a wildcard listen address replaced by the
    node's host name."""
    at, _, port = address.rpartition(":")
    return f"{host}:{port}" if at in ANY_ADDRESS else address


def lb_nodes(found: Sequence[object], *, now: datetime, portal_port: int, enrol_port: int,
             keep_stopped: timedelta = timedelta(0)) -> list[LbNode]:
    """The live nodes (active or draining, lease not run out) of ``printgate.store.nodes.list_nodes``,
    and those that stopped or went silent less than ``keep_stopped`` ago (their health checks keep
    them out of the balance; a restart brings them back without a changed config). The registry
    has no portal and enrolment ports: every node listens on ``portal_port`` and ``enrol_port`` at
    the host of its proxy and channel addresses."""
    from gateway.session_hosts import node_label
    from printgate.store.nodes import Node

    out = []
    for node in found:
        assert isinstance(node, Node)
        gone_since = node.stopped_at or min(node.lease_expires_at, now)
        if not node.is_live(now) and now - gone_since >= keep_stopped:
            continue
        proxy = _reachable(node.addresses.proxy, node.host)
        channel = _reachable(node.addresses.channel, node.host)
        out.append(LbNode(
            id=node.id, label=node_label(node.id), proxy=proxy, channel=channel,
            relay=_reachable(node.addresses.relay, node.host),
            portal=f"{proxy.rpartition(':')[0]}:{portal_port}", enrol=f"{channel.rpartition(':')[0]}:{enrol_port}"))
    return sorted(out, key=lambda n: n.label)


def render(nodes: Sequence[LbNode], *, check_inter: str = "2s") -> tuple[str, str]:
    """``(nodes.cfg, nodes.map)`` for ``deploy/haproxy/haproxy.cfg``. Refuses two nodes with one label.

    Every server of a node is checked by an HTTP GET at that node's portal (``addr``/``port`` on the
    check): ``/readyz`` for the portal, channel, enrolment and any-node proxy backends (a paused,
    draining or stopped node leaves them within two checks, not only the portal's), ``/healthz`` for
    the node's own proxy backend (a draining node still serves its live sessions until they end; a
    paused or stopped one leaves it)."""
    from printgate.errors import ConfigError

    labels = [n.label for n in nodes]
    if len(set(labels)) != len(labels):
        raise ConfigError("two nodes have the same label (node ids whose hashes collide): rename one node "
                          "([gateway] node_id)")

    def server(n: LbNode, address: str) -> str:
        at, _, port = n.portal.rpartition(":")
        return f"    server {n.label} {address} check addr {at.strip('[]')} port {port} inter {check_inter} fall 2 rise 2"

    ready = ["    option httpchk GET /readyz", "    http-check expect status 200"]
    alive = ["    # its live sessions: served while the node drains, so alive (not ready) is enough",
             "    option httpchk GET /healthz", "    http-check expect status 200"]
    lines = [f"# generated by 'printgate nodes haproxy' from gateway_nodes: {len(nodes)} node(s). Do not edit.",
             "# every server is health-checked at its node's portal: /readyz (503 while draining), a node's",
             "# own proxy at /healthz (it serves its live sessions while it drains)",
             "", "backend printgate_portal", "    mode http", "    balance roundrobin",
             "    # portal pages answer quickly: a node that stops answering (paused) fails the request soon",
             "    timeout server 30s", *ready]
    lines += [server(n, n.portal) for n in nodes]
    lines += ["", "# session hosts without a known label: any node answers (its page says which node owns it)",
              "backend printgate_proxy_any", "    mode http", "    balance roundrobin", *ready]
    lines += [server(n, n.proxy) for n in nodes]
    for n in nodes:
        lines += ["", f"# node {n.id}", f"backend printgate_proxy_{n.label}", "    mode http", *alive,
                  server(n, n.proxy)]
    lines += ["", "backend printgate_channel", "    mode tcp", "    balance leastconn", *ready]
    lines += [server(n, n.channel) for n in nodes]
    lines += ["", "backend printgate_enrol", "    mode tcp", "    balance roundrobin", *ready]
    lines += [server(n, n.enrol) for n in nodes]
    lines += ["", "# relays are reached directly by the agents (SSH has no SNI): "
              + ", ".join(f"{n.label} {n.relay}" for n in nodes)]
    mapping = ["# node label -> its DWA proxy backend (generated by 'printgate nodes haproxy')"]
    mapping += [f"{n.label} printgate_proxy_{n.label}" for n in nodes]
    return "\n".join(lines) + "\n", "\n".join(mapping) + "\n"


async def _read(url: str) -> list[object]:
    from printgate.store import nodes
    from printgate.store.db import Database

    db = Database(url)
    try:
        async with db.session() as s:
            return list(await nodes.list_nodes(s))
    finally:
        await db.aclose()


def _list(url: str) -> list[object]:
    """The registry's nodes, or exit 2 saying why they cannot be read."""
    from sqlalchemy.engine import make_url

    try:
        return asyncio.run(_read(url))
    except Exception as exc:
        shown = make_url(url).render_as_string(hide_password=True)
        typer.echo(f"printgate nodes: cannot read the node registry at {shown}: {type(exc).__name__}: "
                   f"{str(exc).splitlines()[0][:200]} (is it the gateway's database_url, upgraded with "
                   "'printgate db upgrade'?)", err=True)
        raise typer.Exit(2) from None


def _write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)  # HAProxy reloading meanwhile reads the old or the new file, never half of one
    return True


@app.command("list")
def list_(config: Path | None = ConfigOpt, database_url: str | None = DbOpt) -> None:
    """The nodes in the registry: id, label, state, lease, addresses."""
    from gateway.session_hosts import node_label
    from printgate.store.nodes import Node

    url = database_url or Settings.load(config).database_url
    now = datetime.now(UTC)
    for node in _list(url):
        assert isinstance(node, Node)
        live = "live" if node.is_live(now) else "not live"
        typer.echo(f"{node.id}  label {node_label(node.id)}  {node.state} ({live}, lease until "
                   f"{node.lease_expires_at.isoformat(timespec='seconds')})  proxy {node.addresses.proxy}  "
                   f"relay {node.addresses.relay}  channel {node.addresses.channel}")


@app.command()
def haproxy(
    out: Path = typer.Option(..., "--out", help="directory for nodes.cfg and nodes.map (e.g. /etc/haproxy/printgate)"),
    portal_port: int = typer.Option(8400, help="the port every node's portal listens on (\\[portal] port)"),
    enrol_port: int = typer.Option(8444, help="the port every node's enrolment listens on (\\[gateway] enrol_port)"),
    keep_stopped_minutes: float = typer.Option(
        15.0, min=0, help="keep a stopped or silent node's backends this long (health checks take it out; a "
                          "rolling restart then changes nothing)"),
    config: Path | None = ConfigOpt, database_url: str | None = DbOpt,
) -> None:
    """Write HAProxy's node backends and host map from the registry; prints 'changed' (reload HAProxy)
    or 'unchanged'."""
    from printgate.errors import PrintgateError

    url = database_url or Settings.load(config).database_url
    found = lb_nodes(_list(url), now=datetime.now(UTC), portal_port=portal_port, enrol_port=enrol_port,
                     keep_stopped=timedelta(minutes=keep_stopped_minutes))
    if not found:
        typer.echo("printgate nodes haproxy: no live or recently stopped node in the registry; start a node first "
                   "(nodes.cfg would have empty backends)", err=True)
        raise typer.Exit(1)
    try:
        cfg, mapping = render(found)
    except PrintgateError as exc:
        typer.echo(f"printgate nodes haproxy: {exc.message}", err=True)
        raise typer.Exit(2) from None
    out.mkdir(parents=True, exist_ok=True)
    changed = _write_if_changed(out / "nodes.cfg", cfg) | _write_if_changed(out / "nodes.map", mapping)
    typer.echo(f"{'changed' if changed else 'unchanged'}: {len(found)} node(s) "
               f"({', '.join(f'{n.id}={n.label}' for n in found)}) in {out}")


async def _forget(url: str, node_id: str) -> object:
    from printgate.store import nodes
    from printgate.store.db import Database

    db = Database(url)
    try:
        async with db.session() as s, s.begin():
            return await nodes.forget(s, node_id, now=datetime.now(UTC))
    finally:
        await db.aclose()


@app.command()
def forget(
    node_id: str = typer.Argument(..., help="the node's id (printgate nodes list)"),
    config: Path | None = ConfigOpt, database_url: str | None = DbOpt,
) -> None:
    """Delete the registry row of a node that is gone for good (stopped or expired); refuses a live
    node. Its sessions were ended when it stopped or was taken over; the next 'nodes haproxy' after
    --keep-stopped-minutes drops its backends anyway."""
    from printgate.errors import NodeStillLive

    url = database_url or Settings.load(config).database_url
    try:
        gone = asyncio.run(_forget(url, node_id))
    except NodeStillLive as exc:
        typer.echo(f"printgate nodes forget: {exc.message}", err=True)
        raise typer.Exit(1) from None
    if gone is None:
        typer.echo(f"printgate nodes forget: no node {node_id!r} in the registry (printgate nodes list)", err=True)
        raise typer.Exit(1)
    typer.echo(f"forgotten: {node_id}")
