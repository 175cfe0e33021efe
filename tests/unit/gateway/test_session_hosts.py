"""Session hosts that name their node (issue 18, docs/scale-out.md "Host routing"): one rule for the
proxy, the broker and the load balancer's map; another node's host is refused with its own page."""

from __future__ import annotations

import re

from gateway import session_hosts
from gateway.proxy.addons.session_auth import SessionAuth
from gateway.proxy.decision import DECISION_KEY
from tests.unit.gateway.proxy.addons.flows import deps, flow

DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def test_a_node_label_is_short_dns_safe_and_stable_per_node_id() -> None:
    one = session_hosts.node_label("gw-host-1.example:a/b")
    assert one == session_hosts.node_label("gw-host-1.example:a/b")  # stable across restarts
    assert one != session_hosts.node_label("gw-host-2.example:a/b")
    assert session_hosts.LABEL_RE.fullmatch(one) and len(one) == 9


def test_a_session_host_names_the_node_and_reads_back() -> None:
    label = session_hosts.node_label("node-1")
    host = session_hosts.session_host("00ff1234abcd5678", "DWA.Example.com.", label)
    assert host == f"s-00ff1234abcd5678-{label}.dwa.example.com"
    assert DNS_LABEL.fullmatch(host.split(".", 1)[0])  # one label under the wildcard certificate
    parsed = session_hosts.parse_session_host(host, "dwa.example.com")
    assert parsed == session_hosts.SessionHost("00ff1234abcd5678", label)


def test_a_single_node_keeps_its_hosts_and_foreign_names_are_not_session_hosts() -> None:
    assert session_hosts.session_host("abc1", "dwa.localhost") == "s-abc1.dwa.localhost"
    assert session_hosts.parse_session_host("s-abc1.dwa.localhost", "dwa.localhost") == \
        session_hosts.SessionHost("abc1", None)
    for host in ("s-abc1.dwa.example.org", "x-abc1.dwa.localhost", "s-abc1-nzz.dwa.localhost",
                 "a.s-abc1.dwa.localhost", "dwa.localhost"):
        assert session_hosts.parse_session_host(host, "dwa.localhost") is None, host


async def test_the_proxy_refuses_another_nodes_session_host_with_its_own_page() -> None:
    own, other = session_hosts.node_label("node-1"), session_hosts.node_label("node-2")
    auth = SessionAuth(deps(node_label=own))
    f = flow(path="/status")
    f.request.headers["host"] = session_hosts.session_host("abcd", "dwa.localhost", other) + ":8443"
    await auth.requestheaders(f)
    assert f.response is not None and f.response.status_code == 421
    body = f.response.get_text() or ""
    assert "served by gateway node" in body and other in body and own in body
    assert f.metadata[DECISION_KEY].rule == "session.other_node"
    # its own node's unknown session: the usual "no such session"
    mine = flow(path="/status")
    mine.request.headers["host"] = session_hosts.session_host("abcd", "dwa.localhost", own)
    await auth.requestheaders(mine)
    assert mine.response is not None and mine.response.status_code == 404
