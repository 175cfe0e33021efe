"""nftables backend for real, as root, in network namespaces this test creates."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path
from string import Template

import pytest

from gateway.firewall import NftablesFirewall, reconcile_with_sessions
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


def set_elements(lan: Lan, name: str) -> str:
    out = sh("ip", "netns", "exec", lan.gw, "nft", "list", "set", "inet", "printgate", name).stdout
    return out.split("elements", 1)[1] if "elements" in out else ""


async def fetch(lan: Lan) -> str:
    return await asyncio.to_thread(lan.fetch, lan.tech, lan.gw_ip_tech)


@pytest.mark.parametrize("ends_first", ["s-one-tech", "s-two-tech"])
async def test_ending_one_of_two_sessions_from_one_address_keeps_the_other(
    lan: Lan, nft: NftablesFirewall, ends_first: str
) -> None:
    await nft.allow("s-one-tech", lan.tech_ip, lan.port, 60)
    await nft.allow("s-two-tech", lan.tech_ip, lan.port, 60)
    sessions = set_elements(lan, "sessions")
    assert '"s-one-tech"' in sessions and '"s-two-tech"' in sessions  # one element each

    await nft.revoke(ends_first)
    still = "s-two-tech" if ends_first == "s-one-tech" else "s-one-tech"
    assert await fetch(lan) == "200"  # the other session's technician still gets through
    assert f'"{ends_first}"' not in set_elements(lan, "sessions")
    assert f'"{still}"' in set_elements(lan, "sessions")
    assert lan.tech_ip in set_elements(lan, "allowed")
    assert nft.is_allowed(lan.tech_ip, lan.port)

    await nft.revoke(still)
    assert await fetch(lan) == "000"
    assert lan.tech_ip not in nft_list(lan)


@pytest.mark.parametrize("short_first", [True, False])
async def test_expiry_of_one_session_leaves_the_other_sessions_exception(
    lan: Lan, nft: NftablesFirewall, short_first: bool
) -> None:
    grants = [("s-short-tech", 2), ("s-long-tech", 60)]
    for rule_id, timeout in grants if short_first else grants[::-1]:
        await nft.allow(rule_id, lan.tech_ip, lan.port, timeout)
    deadline = time.monotonic() + 6
    while '"s-short-tech"' in set_elements(lan, "sessions") and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
    assert '"s-short-tech"' not in set_elements(lan, "sessions")  # expired in the kernel
    await asyncio.sleep(0.5)
    assert await fetch(lan) == "200"
    await nft.revoke("s-short-tech")  # the broker ends the expired session late: no effect on the other
    assert await fetch(lan) == "200"
    await nft.revoke("s-long-tech")
    assert await fetch(lan) == "000"


async def test_concurrent_grants_from_one_address_keep_the_longest(lan: Lan, nft: NftablesFirewall) -> None:
    await asyncio.gather(nft.allow("s-c1-tech", lan.tech_ip, lan.port, 60),
                         nft.allow("s-c2-tech", lan.tech_ip, lan.port, 2))
    await asyncio.sleep(3)
    assert await fetch(lan) == "200"
    assert "1m" in set_elements(lan, "allowed") or "59s" in set_elements(lan, "allowed")
    await nft.revoke("s-c1-tech")
    assert await fetch(lan) == "000"


async def test_ending_one_session_keeps_the_other_sessions_open_connection(
    lan: Lan, nft: NftablesFirewall
) -> None:
    """A connection made under the remaining session survives the other's end (no conntrack flush)."""
    await nft.allow("s-kept-tech", lan.tech_ip, lan.port, 60)
    await nft.allow("s-ended-tech", lan.tech_ip, lan.port, 60)
    client = textwrap.dedent(f"""
        import socket, sys
        s = socket.create_connection(({lan.gw_ip_tech!r}, {lan.port}), timeout=5)
        print("connected", flush=True)
        sys.stdin.readline()
        try:
            s.sendall(b"GET / HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n")
            print(s.recv(12).decode(errors="replace"), flush=True)
        except OSError as exc:
            print("failed", exc, flush=True)
    """)
    proc = subprocess.Popen(["ip", "netns", "exec", lan.tech, sys.executable, "-c", client],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert await asyncio.to_thread(proc.stdout.readline) == "connected\n"
        await nft.revoke("s-ended-tech")
        proc.stdin.write("go\n")
        proc.stdin.flush()
        answer = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 10)
        assert answer.startswith("HTTP/1.0 200"), answer
    finally:
        proc.kill()
        proc.wait(timeout=5)
    await nft.revoke("s-kept-tech")


async def test_reconcile_removes_a_gone_session_but_keeps_a_live_one_on_the_same_address(
    lan: Lan, nft: NftablesFirewall
) -> None:
    await nft.allow("live-tech", lan.tech_ip, lan.port, 60)
    await nft.allow("gone-tech", lan.tech_ip, lan.port, 60)
    restarted = NftablesFirewall("printgate", netns=lan.gw, protected_ports=[lan.port])
    await restarted.install()
    removed = await reconcile_with_sessions(restarted, ["live"])
    assert removed == ["gone-tech"]
    assert {r.rule_id for r in await restarted.list_rules()} == {"live-tech"}
    assert await fetch(lan) == "200"
    assert restarted.is_allowed(lan.tech_ip, lan.port)
    await restarted.revoke("live-tech")
    assert await fetch(lan) == "000"


async def test_a_table_from_before_per_session_elements_is_adopted(lan: Lan) -> None:
    old_template = (ROOT / "deploy/nftables/printgate.nft").read_text().replace("\tset sessions {\n\t\ttype ipv4_addr . inet_service . mark\n\t\tflags timeout\n\t}\n", "")
    assert "sessions" not in old_template.split("table inet", 1)[1]
    legacy = subprocess.run(
        ["ip", "netns", "exec", lan.gw, "nft", "-f", "-"], check=True, text=True, timeout=30,
        input=Template(old_template).substitute(table="printgate", ports=f"elements = {{ {lan.port} }}")
        + f'add element inet printgate allowed {{ {lan.tech_ip} . {lan.port} timeout 60s comment "old-live-tech" }}\n'
        + f'add element inet printgate allowed {{ {lan.attacker_ip} . {lan.port} timeout 60s comment "old-gone-tech" }}\n',
    )
    assert legacy.returncode == 0
    fw = NftablesFirewall("printgate", netns=lan.gw, protected_ports=[lan.port])
    try:
        await fw.install()
        assert await fw.reconcile(["old-live-tech"]) == ["old-gone-tech"]
        assert {r.rule_id for r in await fw.list_rules()} == {"old-live-tech"}
        assert await fetch(lan) == "200"
        assert lan.attacker_ip not in nft_list(lan)
        await fw.allow("new-tech", lan.tech_ip, lan.port, 60)
        await fw.revoke("old-live-tech")
        assert await fetch(lan) == "200"
    finally:
        await fw.remove_table()
