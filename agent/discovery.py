"""Discovery: sweep targets, keep RFC 3805 printers, say why others are excluded.

``discover`` runs a bounded worker pool over the expanded targets: at most
``max_in_flight`` hosts are probed at once, so a /24 of dead hosts costs about
one timeout round (timeout x (retries+1)) when max_in_flight >= 256, not a sum
of timeouts. ``compare_with_known`` (pure) recognises moved devices by
identity and flags a different device on a known address.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from agent.errors import SNMP_AUTH_FAILED, SNMP_CONFIG, SNMP_TIMEOUT, SNMP_UNREACHABLE
from agent.snmp.identity import probe_device
from agent.snmp.transport import SnmpClient
from printgate.domain import DeviceIdentity, DiscoveryResult, DiscoveryStatus, SnmpCredential
from printgate.errors import ConfigError, SnmpError
from printgate.logs import get_logger

log = get_logger("agent.discovery")

MAX_TARGETS = 65536


@dataclass(frozen=True, slots=True)
class DiscoveryLimits:
    max_in_flight: int = 64
    packets_per_second: float | None = 500.0
    timeout: float = 1.0
    retries: int = 1


ProgressCallback = Callable[[DiscoveryResult], None]


def expand_targets(targets: Iterable[str], exclude: Iterable[str] = ()) -> list[str]:
    """CIDRs and single addresses, minus exclusions, in order, no duplicates."""
    def nets(items: Iterable[str], what: str) -> list[ipaddress.IPv4Network]:
        out = []
        for item in items:
            try:
                out.append(ipaddress.IPv4Network(item.strip(), strict=False))
            except ValueError as exc:
                raise ConfigError(f"{what} {item!r} is not an IPv4 address or CIDR (e.g. 10.0.0.0/24)") from exc
        return out

    excluded = nets(exclude, "exclusion")
    seen: dict[str, None] = {}
    for net in nets(targets, "target"):
        hosts = [net.network_address] if net.num_addresses == 1 else list(net.hosts())
        for host in hosts:
            if any(host in ex for ex in excluded):
                continue
            seen[str(host)] = None
            if len(seen) > MAX_TARGETS:
                raise ConfigError(f"more than {MAX_TARGETS} addresses to scan; split the ranges")
    return list(seen)


async def discover_one(
    client: SnmpClient, ip: str, port: int, credentials: Sequence[SnmpCredential]
) -> DiscoveryResult:
    try:
        probe = await probe_device(client, ip, port, credentials)
    except SnmpError as exc:
        status = {
            SNMP_TIMEOUT: DiscoveryStatus.UNREACHABLE,
            SNMP_UNREACHABLE: DiscoveryStatus.UNREACHABLE,
            SNMP_AUTH_FAILED: DiscoveryStatus.AUTH_FAILED,
        }.get(exc.code, DiscoveryStatus.ERROR)
        if exc.code == SNMP_CONFIG:
            raise
        return DiscoveryResult(ip, status, exc.message)
    status = DiscoveryStatus.PRINTER if probe.printer else DiscoveryStatus.EXCLUDED
    return DiscoveryResult(ip, status, probe.reason, probe.identity, probe.target.credential.label)


async def discover(
    targets: Sequence[str],
    *,
    port: int = 161,
    credentials: Sequence[SnmpCredential],
    exclude: Sequence[str] = (),
    limits: DiscoveryLimits = DiscoveryLimits(),
    progress: ProgressCallback | None = None,
    client: SnmpClient | None = None,
) -> list[DiscoveryResult]:
    """Probe every target address; one result per address, in target order."""
    hosts = expand_targets(targets, exclude)
    if not credentials:
        raise ConfigError("discovery needs at least one SNMP credential set")
    own = client is None
    snmp = client or SnmpClient(
        timeout=limits.timeout, retries=limits.retries,
        max_in_flight=limits.max_in_flight, packets_per_second=limits.packets_per_second,
    )
    results: dict[str, DiscoveryResult] = {}
    queue: asyncio.Queue[str] = asyncio.Queue()
    for h in hosts:
        queue.put_nowait(h)

    async def worker() -> None:
        while True:
            try:
                ip = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            result = await discover_one(snmp, ip, port, credentials)
            results[ip] = result
            if progress is not None:
                progress(result)

    try:
        async with asyncio.TaskGroup() as tg:
            for _ in range(min(limits.max_in_flight, len(hosts)) or 0):
                tg.create_task(worker())
    finally:
        if own:
            await snmp.aclose()
    counts = {s: sum(1 for r in results.values() if r.status is s) for s in DiscoveryStatus}
    log.info("discovery.done", targets=len(hosts), **{str(k): v for k, v in counts.items()})
    if hosts and counts[DiscoveryStatus.UNREACHABLE] == len(hosts):  # not one answer: say where to look
        log.warning("discovery.nothing_answered", targets=len(hosts), port=port, credentials=len(credentials),
                    hint="no address answered SNMP: check snmp_port (the lab's is printed by "
                         "`printgate lab run`), the communities / v3 user, and that no firewall drops UDP")
    return [results[h] for h in hosts]


class Change(enum.StrEnum):
    NEW = "new"
    UNCHANGED = "unchanged"
    MOVED = "moved"  # same device, new address
    REPLACED = "replaced"  # a different device on a known address


@dataclass(frozen=True, slots=True)
class InventoryChange:
    change: Change
    ip: str
    identity: DeviceIdentity
    previous_ip: str | None = None
    previous_identity: DeviceIdentity | None = None


def same_device(a: DeviceIdentity, b: DeviceIdentity) -> bool:
    """Same physical device: equal serial, else equal MAC (model alone is not enough)."""
    if a.serial and b.serial:
        return a.serial == b.serial
    if a.mac and b.mac:
        return a.mac == b.mac
    return False


def compare_with_known(
    known: Mapping[str, DeviceIdentity], found: Iterable[DiscoveryResult]
) -> list[InventoryChange]:
    """Classify each printer found against the known inventory (ip -> identity)."""
    out: list[InventoryChange] = []
    for r in found:
        if r.status is not DiscoveryStatus.PRINTER or r.identity is None:
            continue
        ident = r.identity
        at_ip = known.get(r.ip)
        if at_ip is not None and same_device(at_ip, ident):
            out.append(InventoryChange(Change.UNCHANGED, r.ip, ident))
            continue
        moved_from = next((ip for ip, k in known.items() if ip != r.ip and same_device(k, ident)), None)
        if moved_from is not None:
            out.append(InventoryChange(Change.MOVED, r.ip, ident, moved_from, known[moved_from]))
        elif at_ip is not None and at_ip.mismatches(ident):
            out.append(InventoryChange(Change.REPLACED, r.ip, ident, r.ip, at_ip))
        elif at_ip is not None:
            out.append(InventoryChange(Change.UNCHANGED, r.ip, ident))
        else:
            out.append(InventoryChange(Change.NEW, r.ip, ident))
    return out
