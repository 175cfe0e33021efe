"""Which network addresses printgate's outbound integrations may call (webhooks, syslog).

A tenant's target (a dealer's webhook endpoint, a security-alert subscription's webhook or
syslog collector) must never reach the cloud's own network: loopback, private, link-local,
carrier-grade NAT, multicast, reserved and metadata addresses are refused. IPv6 forms that carry
an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, IPv4-compatible ``::a.b.c.d``, SIIT
IPv4-translated ``::ffff:0:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``, Teredo ``2001::/32``) are judged by the IPv4 address they
carry: a NAT64 gateway or 6to4 relay would otherwise forward ``64:ff9b::a9fe:a9fe`` to
169.254.169.254.

The check is made when a target is saved (``check_literal``) and again when connecting
(``resolve_public``: resolve, check EVERY address, return the checked one to connect to, so a
name that changes its answer between the two (DNS rebinding) never reaches an internal address).
Names are resolved on a small dedicated thread pool with a timeout, never on asyncio's shared
default executor: a slow resolver cannot starve the rest of the process.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from concurrent.futures import ThreadPoolExecutor

from integrations.errors import EndpointInvalid

RESOLVE_TIMEOUT_SECONDS = 5.0
RESOLVER_THREADS = 4

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215 local-use: never public
_COMPAT = ipaddress.IPv6Network("::/96")
_SIIT = ipaddress.IPv6Network("::ffff:0:0:0/96")  # RFC 2765 IPv4-translated ::ffff:0:a.b.c.d
_V4_REFUSED = (ipaddress.IPv4Network("0.0.0.0/8"), ipaddress.IPv4Network("100.64.0.0/10"),
               ipaddress.IPv4Network("192.0.0.0/24"), ipaddress.IPv4Network("198.18.0.0/15"))
_executor: ThreadPoolExecutor | None = None


def _v4_public(a: ipaddress.IPv4Address) -> bool:
    if not a.is_global or a.is_multicast or a.is_unspecified or a.is_reserved:
        return False
    return not any(a in n for n in _V4_REFUSED)


def embedded_ipv4(a: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address] | None:
    """The IPv4 address(es) an IPv6 address carries, or ``None`` for a plain IPv6 address."""
    if a.ipv4_mapped is not None:
        return [a.ipv4_mapped]
    if a in _NAT64 or a in _SIIT or (a in _COMPAT and int(a) > 1):
        return [ipaddress.IPv4Address(int(a) & 0xFFFFFFFF)]
    if a.sixtofour is not None:
        return [a.sixtofour]
    if a.teredo is not None:
        server, client = a.teredo
        return [server, client]
    return None


def is_public(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether an outbound integration may connect to ``address`` (an IP literal, scope id allowed)."""
    try:
        a = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
    except ValueError:
        return False
    if isinstance(a, ipaddress.IPv4Address):
        return _v4_public(a)
    if a in _NAT64_LOCAL or a.is_multicast or a.is_unspecified or a.is_loopback or a.is_link_local \
            or a.is_site_local:
        return False
    carried = embedded_ipv4(a)
    if carried is not None:
        return all(_v4_public(v4) for v4 in carried)
    return a.is_global


def is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def check_literal(host: str, *, what: str) -> None:
    """At save time: an IP literal must be public; so must a name that is obviously local.
    ``EndpointInvalid`` names the address. (Names are resolved again at connect time.)"""
    name = host.strip("[]").rstrip(".").lower()
    if is_literal(name):
        if not is_public(name):
            raise EndpointInvalid(f"{what} host {host} is a non-public address; "
                                  "point it at the receiver's public address")
    elif name == "localhost" or name.endswith((".localhost", ".local", ".internal")):
        raise EndpointInvalid(f"{what} host {host} is a local name; point it at the receiver's public address")


def _resolver() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=RESOLVER_THREADS, thread_name_prefix="pg-resolve")
    return _executor


def _getaddrinfo(host: str, port: int) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def resolve_sync(host: str, port: int, *, what: str) -> list[str]:
    """Every address of ``host`` (blocking; for save-time checks off the event loop);
    ``EndpointInvalid`` if it does not resolve or any address is not public."""
    name = host.strip("[]")
    try:
        addresses = [name] if is_literal(name) else _getaddrinfo(name, port)
    except OSError as exc:
        raise EndpointInvalid(f"{what} host {host} does not resolve: {exc}") from exc
    return _all_public(addresses, host, what)


def _all_public(addresses: list[str], host: str, what: str) -> list[str]:
    bad = sorted({a for a in addresses if not is_public(a)})
    if not addresses or bad:
        raise EndpointInvalid(f"{what} host {host} is a non-public address ({', '.join(bad) or 'none'}); "
                              "point it at the receiver's public address")
    return addresses


async def resolve_public(host: str, port: int, *, what: str,
                         timeout: float = RESOLVE_TIMEOUT_SECONDS) -> list[str]:
    """At connect time: resolve ``host`` on the dedicated resolver pool (at most ``timeout``
    seconds), refuse if ANY address is not public, return the checked addresses (connect to
    one of them, not to the name)."""
    name = host.strip("[]")
    if is_literal(name):
        return _all_public([name], host, what)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            addresses = await loop.run_in_executor(_resolver(), _getaddrinfo, name, port)
    except TimeoutError as exc:
        raise EndpointInvalid(f"{what} host {host} did not resolve within {timeout:g} s") from exc
    except OSError as exc:
        raise EndpointInvalid(f"{what} host {host} does not resolve: {exc}") from exc
    return _all_public(addresses, host, what)
