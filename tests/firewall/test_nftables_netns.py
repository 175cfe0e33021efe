"""nftables backend for real, as root, in network namespaces this test creates."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.firewall import NftablesFirewall
from printgate.errors import FirewallError
from tests.firewall.conftest import Lan, sh

pytestmark = [pytest.mark.root, pytest.mark.timeout(120)]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def nft(lan: Lan) -> AsyncIterator[NftablesFirewall]:
    fw = NftablesFirewall("printgate", netns=lan.gw, protected_ports=[lan.port])
    await fw.install()
    yield fw
    await fw.remove_table()


def nft_list(lan: Lan) -> str:
    return sh("ip", "netns", "exec", lan.gw, "nft", "list", "table", "inet", "printgate").stdout


def elements(lan: Lan) -> str:
    out = sh("ip", "netns", "exec", lan.gw, "nft", "list", "set", "inet", "printgate", "allowed").stdout
    return out.split("elements", 1)[1] if "elements" in out else ""


async def test_attacker_dropped_and_technician_passes_only_during_session(lan: Lan, nft: NftablesFirewall) -> None:
    assert lan.fetch(lan.tech, lan.gw_ip_tech) == "000"  # default deny
    await nft.allow("s1-tech", lan.tech_ip, lan.port, 60)
    assert nft.is_allowed(lan.tech_ip, lan.port)
    assert await asyncio.to_thread(lan.fetch, lan.tech, lan.gw_ip_tech) == "200"
    assert await asyncio.to_thread(lan.fetch, lan.attacker, lan.gw_ip_attacker) == "000"
    assert '"s1-tech"' in elements(lan)

    await nft.revoke("s1-tech")
    assert await asyncio.to_thread(lan.fetch, lan.tech, lan.gw_ip_tech) == "000"
    assert lan.tech_ip not in elements(lan)
    assert not nft.is_allowed(lan.tech_ip, lan.port)


async def test_exception_expires_in_kernel_after_gateway_is_killed(lan: Lan, nft: NftablesFirewall) -> None:
    script = textwrap.dedent(f"""
        import asyncio, sys, time
        from gateway.firewall import NftablesFirewall
        async def main():
            fw = NftablesFirewall("printgate", netns={lan.gw!r}, protected_ports=[{lan.port}])
            await fw.install()
            await fw.allow("s2-tech", {lan.tech_ip!r}, {lan.port}, 3)
            print("ready", flush=True)
            print("", flush=True)
            time.sleep(60)
        asyncio.run(main())
    """)
    gateway = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE)
    try:
        assert gateway.stdout is not None
        lines = [gateway.stdout.readline().strip() for _ in range(3)]  # log lines, then "ready"
        assert b"ready" in lines
        gateway.kill()  # the gateway dies without any teardown
        gateway.wait(timeout=5)
        assert await asyncio.to_thread(lan.fetch, lan.tech, lan.gw_ip_tech) == "200"
        deadline = time.monotonic() + 6
        while lan.tech_ip in elements(lan) and time.monotonic() < deadline:
            await asyncio.sleep(0.25)
        assert lan.tech_ip not in elements(lan)
        assert await asyncio.to_thread(lan.fetch, lan.tech, lan.gw_ip_tech) == "000"
    finally:
        if gateway.poll() is None:
            gateway.kill()


async def test_restarted_gateway_reconciles_stale_rules(lan: Lan, nft: NftablesFirewall) -> None:
    await nft.allow("gone-tech", lan.tech_ip, lan.port, 60)
    await nft.allow("live-tech", lan.attacker_ip, lan.port, 60)
    restarted = NftablesFirewall("printgate", netns=lan.gw, protected_ports=[lan.port])
    await restarted.install()  # keeps existing elements
    assert {r.rule_id for r in await restarted.list_rules()} == {"gone-tech", "live-tech"}
    removed = await restarted.reconcile(["live-tech"])
    assert removed == ["gone-tech"]
    assert {r.rule_id for r in await restarted.list_rules()} == {"live-tech"}
    assert await asyncio.to_thread(lan.fetch, lan.tech, lan.gw_ip_tech) == "000"
    assert restarted.is_allowed(lan.attacker_ip, lan.port)


async def test_teardown_leaves_no_rule(lan: Lan, nft: NftablesFirewall) -> None:
    await nft.allow("s3-tech", lan.tech_ip, lan.port, 60)
    await nft.revoke("s3-tech")
    listing = nft_list(lan)
    assert "s3-tech" not in listing
    assert lan.tech_ip not in listing


async def test_rule_that_cannot_be_installed_fails_closed(lan: Lan) -> None:
    broken = NftablesFirewall("printgate", netns="printgate-no-such-ns")
    with pytest.raises(FirewallError):
        await broken.allow("s4-tech", lan.tech_ip, lan.port, 60)
    assert not broken.is_allowed(lan.tech_ip, lan.port)
