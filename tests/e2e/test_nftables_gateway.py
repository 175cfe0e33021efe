"""The gateway with its production firewall: nftables exceptions follow the session lifecycle."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.catalog import by_name
from printgate.cli.demo_system import DemoSystem

PRINTER = by_name("konica_c250i")


@pytest.fixture
def netns() -> Iterator[str]:
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            raise RuntimeError("CI runs as root: the nftables test must not be skipped")
        pytest.skip("needs root for network namespaces and nftables")
    name = f"pggw{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def _elements(ns: str) -> list[str]:
    out = subprocess.run(
        ["ip", "netns", "exec", ns, "nft", "list", "set", "inet", "printgate", "allowed"],
        check=True, capture_output=True, text=True,
    ).stdout
    return [line.strip() for line in out.splitlines() if "timeout" in line and "comment" in line]


async def test_session_exceptions_are_installed_in_nftables_and_removed_at_teardown(
    tmp_path: Path, netns: str
) -> None:
    overrides = {"firewall": "nftables", "firewall_netns": netns}
    async with DemoSystem(tmp_path, log_level="warning", gateway_overrides=overrides) as system:
        await system.wait_for_devices(minimum=1, timeout=90)
        assert _elements(netns) == []
        await system.open_session_as_demo_user(PRINTER.ip)
        (session,) = system.cloud.broker.live_sessions_of("user-demo-tech")
        listed = " ".join(_elements(netns))
        assert f'"{session.id}-tech"' in listed and f'"{session.id}-agent"' in listed
        assert f"127.0.0.1 . {system.cloud.proxy.port}" in listed
        assert f"127.0.0.1 . {system.cloud.relay.port}" in listed
        await system.close_all_sessions(reason="test teardown")
        assert _elements(netns) == []
