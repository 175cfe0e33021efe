"""Issue 18 finding 6: the start-up port check probes the address each listener really binds, so
nodes on their own loopback/host addresses with equal ports start (the relay included)."""

from __future__ import annotations

import socket

import pytest

from printgate.cli.serve_checks import check_ports
from printgate.errors import ConfigError
from printgate.settings import GatewaySettings, PortalSettings, Settings


def _settings(ip: str, relay_port: int) -> Settings:
    return Settings(portal=PortalSettings(host=ip, port=0),
                    gateway=GatewaySettings(relay_host=ip, relay_port=relay_port, proxy_host=ip, proxy_port=0,
                                            grpc_host=ip, grpc_port=0, enrol_port=0))


def test_a_second_node_on_its_own_address_may_use_the_same_relay_port() -> None:
    with socket.socket() as node_1_relay:
        node_1_relay.bind(("127.0.0.21", 0))
        node_1_relay.listen()
        port = node_1_relay.getsockname()[1]
        check_ports(_settings("127.0.0.22", port))  # node 2: its own address, the same port
        with pytest.raises(ConfigError, match=f"relay_port = {port} cannot be used: another process already "
                                              f"listens on 127.0.0.21:{port}"):
            check_ports(_settings("127.0.0.21", port))


def test_equal_ports_on_different_addresses_of_one_node_are_not_a_clash_but_on_one_address_are() -> None:
    s = _settings("127.0.0.21", 0)
    apart = s.model_copy(update={"gateway": s.gateway.model_copy(update={"proxy_port": 8480}),
                                 "portal": s.portal.model_copy(update={"host": "127.0.0.23", "port": 8480})})
    check_ports(apart, probe=lambda host, port: None)
    wildcard = apart.model_copy(update={"portal": apart.portal.model_copy(update={"host": "0.0.0.0"})})
    with pytest.raises(ConfigError, match="are both 8480"):
        check_ports(wildcard, probe=lambda host, port: None)
