"""The public-address rule shared by webhooks and syslog (issue 20, F1/F5): IPv6 forms that carry
an IPv4 address are judged by the IPv4 address they carry."""

from __future__ import annotations

import asyncio
import time

import pytest

from integrations import addresses
from integrations.addresses import check_literal, embedded_ipv4, is_public, resolve_public
from integrations.errors import EndpointInvalid


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
    "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fc00::1", "ff02::1", "fe80::1%eth0",
])
def test_plain_internal_addresses_are_refused(address: str) -> None:
    assert not is_public(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert is_public(address)


# each form, carrying an internal (first) and a public (second) IPv4 address
FORMS = {
    "ipv4-mapped": ("::ffff:169.254.169.254", "::ffff:93.184.216.34"),
    "ipv4-compatible": ("::a9fe:a9fe", "::5db8:d822"),
    "siit": ("::ffff:0:169.254.169.254", "::ffff:0:93.184.216.34"),
    "siit-loopback": ("::ffff:0:7f00:1", "::ffff:0:808:808"),
    "nat64": ("64:ff9b::a9fe:a9fe", "64:ff9b::5db8:d822"),
    "nat64-dotted": ("64:ff9b::127.0.0.1", "64:ff9b::93.184.216.34"),
    "6to4": ("2002:a9fe:a9fe::1", "2002:5db8:d822::1"),
    "6to4-private": ("2002:0a00:0001::1", "2002:0808:0808::1"),
    # Teredo: server 65.54.227.120; client = ~address in the last 32 bits
    "teredo": ("2001:0:4136:e378:8000:63bf:" + format(0xFFFF ^ 0xA9FE, "x") + ":" + format(0xFFFF ^ 0xA9FE, "x"),
               "2001:0:4136:e378:8000:63bf:" + format(0xFFFF ^ 0x5DB8, "x") + ":" + format(0xFFFF ^ 0xD822, "x")),
}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_embedded_ipv4_is_judged_by_the_ipv4_rule(form: str) -> None:
    internal, public = FORMS[form]
    assert not is_public(internal), f"{form} {internal} carries an internal IPv4 address"
    assert is_public(public), f"{form} {public} carries a public IPv4 address"


def test_the_embedded_address_is_extracted() -> None:
    import ipaddress
    assert [str(a) for a in embedded_ipv4(ipaddress.IPv6Address("64:ff9b::a9fe:a9fe")) or []] == ["169.254.169.254"]
    teredo = embedded_ipv4(ipaddress.IPv6Address(FORMS["teredo"][0]))
    assert teredo is not None and str(teredo[1]) == "169.254.169.254"
    assert embedded_ipv4(ipaddress.IPv6Address("2606:4700:4700::1111")) is None
    assert [str(a) for a in embedded_ipv4(ipaddress.IPv6Address("::ffff:0:10.0.0.1")) or []] == ["10.0.0.1"]


def test_a_teredo_address_with_an_internal_server_is_refused() -> None:
    assert not is_public("2001:0:a00:1:8000:63bf:a247:27dd")  # server 10.0.0.1, public client


def test_local_use_nat64_is_refused() -> None:
    assert not is_public("64:ff9b:1::808:808")


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "::ffff:10.0.0.1", "localhost", "metadata.google.internal",
                                  "169.254.169.254", "64:ff9b::a9fe:a9fe",
                                  "::ffff:0:169.254.169.254"])
def test_save_time_check_refuses_literals_and_local_names(host: str) -> None:
    with pytest.raises(EndpointInvalid, match="syslog host"):
        check_literal(host, what="syslog")


async def test_connect_time_resolution_refuses_a_name_of_loopback() -> None:
    with pytest.raises(EndpointInvalid, match="non-public"):
        await resolve_public("localhost", 514, what="syslog")


async def test_a_slow_resolver_is_bounded_and_not_on_the_default_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    """A resolver that hangs: the check gives up after its timeout, and asyncio's default
    executor stays free for everything else."""
    def slow(host: str, port: int) -> list[str]:
        time.sleep(1.5)
        return ["93.184.216.34"]

    monkeypatch.setattr(addresses, "_getaddrinfo", slow)
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    checks = [asyncio.create_task(resolve_public(f"slow{i}.example", 443, what="webhook", timeout=0.3))
              for i in range(40)]
    await asyncio.sleep(0.05)
    await loop.run_in_executor(None, lambda: None)  # the default pool answers at once
    assert time.monotonic() - started < 0.3
    results = await asyncio.gather(*checks, return_exceptions=True)
    assert all(isinstance(r, EndpointInvalid) and "within 0.3 s" in r.message for r in results)
    assert time.monotonic() - started < 1.0
