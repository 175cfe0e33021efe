"""``printgate nodes haproxy`` (issue 18): the node backends and host map from the registry; the
shipped deploy/haproxy/haproxy.cfg with them passes ``haproxy -c``; live nodes only, wildcard listen
addresses replaced by the node's host, two nodes with one label refused."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.session_hosts import node_label
from printgate.cli.nodes import LbNode, lb_nodes, render
from printgate.errors import ConfigError
from printgate.store import nodes
from tests.scale.cluster import HAPROXY_CFG

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _node(node_id: str, state: str = nodes.ACTIVE, *, host: str = "10.0.0.1", proxy: str = "10.0.0.1:8480",
          lease: timedelta = timedelta(seconds=10)) -> nodes.Node:
    return nodes.Node(id=node_id, state=state, host=host, pid=1, incarnation="x",
                      addresses=nodes.NodeAddresses(f"{host}:8422", proxy, f"{host}:8443"),
                      started_at=NOW, renewed_at=NOW, lease_expires_at=NOW + lease, stopped_at=None,
                      taken_over_by=None)


def test_only_live_nodes_with_reachable_addresses_are_balanced() -> None:
    found = lb_nodes([_node("a"), _node("b", nodes.DRAINING, host="10.0.0.2", proxy="0.0.0.0:8480"),
                      _node("c", nodes.STOPPED), _node("d", lease=timedelta(seconds=-1))],
                     now=NOW, portal_port=8400, enrol_port=8444)
    assert {n.id for n in found} == {"a", "b"}  # draining keeps its sessions until they end
    b = next(n for n in found if n.id == "b")
    assert b.proxy == "10.0.0.2:8480" and b.portal == "10.0.0.2:8400" and b.label == node_label("b")


def test_the_map_routes_each_label_to_its_nodes_proxy_and_haproxy_accepts_the_config(tmp_path: Path) -> None:
    found = lb_nodes([_node("a"), _node("b", host="10.0.0.2", proxy="10.0.0.2:8480")], now=NOW,
                     portal_port=8400, enrol_port=8444)
    cfg, mapping = render(found)
    for n in found:
        assert f"{n.label} printgate_proxy_{n.label}" in mapping.splitlines()
        assert f"backend printgate_proxy_{n.label}" in cfg and f"server {n.label} {n.proxy} " in cfg
        assert f"server {n.label} {n.portal} " in cfg
    assert "option httpchk GET /readyz" in cfg
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed (scripts/system-deps.sh installs it)")
    (tmp_path / "nodes.cfg").write_text(cfg)
    (tmp_path / "nodes.map").write_text(mapping)
    env = {**os.environ, "PRINTGATE_LB_ADDR": "127.0.0.1", "PRINTGATE_LB_PORTAL_PORT": "1", "PRINTGATE_LB_PROXY_PORT": "2",
           "PRINTGATE_LB_CHANNEL_PORT": "3", "PRINTGATE_LB_ENROL_PORT": "4", "PRINTGATE_HAPROXY_DIR": str(tmp_path)}
    check = subprocess.run(["haproxy", "-c", "-f", str(HAPROXY_CFG), "-f", str(tmp_path / "nodes.cfg")],
                           env=env, capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr


def test_two_nodes_with_one_label_are_refused() -> None:
    one = LbNode("a", "n00000001", "h:1", "h:2", "h:3", "h:4", "h:5")
    with pytest.raises(ConfigError, match="same label"):
        render([one, LbNode("b", "n00000001", "g:1", "g:2", "g:3", "g:4", "g:5")])


def test_a_stopped_node_keeps_its_backends_for_a_while_so_a_restart_changes_nothing() -> None:
    """Finding 11: the rolling restart's stop -> start gap writes the same files (no reload)."""
    running = [_node("a"), _node("b", host="10.0.0.2", proxy="10.0.0.2:8480")]
    stopped_b = replace(running[1], state=nodes.STOPPED, stopped_at=NOW - timedelta(minutes=1),
                        lease_expires_at=NOW - timedelta(minutes=1))
    keep = timedelta(minutes=15)
    while_running = render(lb_nodes(running, now=NOW, portal_port=8400, enrol_port=8444, keep_stopped=keep))
    while_stopped = render(lb_nodes([running[0], stopped_b], now=NOW, portal_port=8400, enrol_port=8444,
                                    keep_stopped=keep))
    assert while_stopped == while_running
    later = NOW + timedelta(minutes=20)  # gone for good: dropped (one reload)
    assert {n.id for n in lb_nodes([running[0], stopped_b], now=later, portal_port=8400, enrol_port=8444,
                                   keep_stopped=keep)} == set()  # a's lease ran out too by then
    assert {n.id for n in lb_nodes([stopped_b], now=NOW, portal_port=8400, enrol_port=8444)} == set()


def test_every_backend_of_a_node_is_checked_at_its_portal_readyz() -> None:
    """Finding 8: a paused or draining node leaves the channel, enrolment and proxy backends too."""
    found = lb_nodes([_node("a")], now=NOW, portal_port=8400, enrol_port=8444)
    cfg, _ = render(found)
    servers = [line.strip() for line in cfg.splitlines() if line.strip().startswith("server ")]
    assert len(servers) == 5  # portal, proxy (any), proxy (own), channel, enrolment
    assert all(" check addr 10.0.0.1 port 8400 " in s for s in servers), servers
    blocks = cfg.split("\nbackend ")[1:]
    own_proxy = f"printgate_proxy_{found[0].label}"
    assert all("option httpchk GET /readyz" in b and "http-check expect status 200" in b for b in blocks
               if not b.startswith(own_proxy))
    # a draining node keeps serving its live sessions: its own proxy backend asks only "alive"
    assert "option httpchk GET /healthz" in next(b for b in blocks if b.startswith(own_proxy))
    portal = next(b for b in blocks if b.startswith("printgate_portal"))
    assert "timeout server 30s" in portal
