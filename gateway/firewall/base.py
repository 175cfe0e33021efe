"""The ephemeral firewall interface (docs/architecture.md, DWA flow step 3): default deny, timed exceptions.

A rule admits one source address to one destination port for a bounded
time. Backends: ``InProcessFirewall`` (the relay and proxy accept paths
enforce it) and ``NftablesFirewall`` (kernel set elements with ``timeout``, so
exceptions expire even when the gateway dies). If a rule cannot be installed
the backend raises ``printgate.errors.FirewallError``: callers fail closed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from printgate.errors import FirewallError


@dataclass(frozen=True, slots=True)
class FirewallRule:
    rule_id: str
    src: str
    dport: int
    expires_at: float  # time.monotonic() deadline (in-process) or wall clock (nftables)


class Firewall(Protocol):
    async def allow(self, rule_id: str, src: str, dport: int, timeout_s: int) -> None: ...

    async def revoke(self, rule_id: str) -> None: ...

    async def reconcile(self, live_rule_ids: Iterable[str]) -> list[str]: ...

    def is_allowed(self, src: str, dport: int) -> bool: ...

    async def aclose(self) -> None: ...


def validate_rule(rule_id: str, src: str, dport: int, timeout_s: int) -> str:
    """Check a rule's parts before it reaches any backend; return the normalised source."""
    if not rule_id or len(rule_id) > 120 or any(c in rule_id for c in "\"'\\\n{};"):
        raise FirewallError(f"firewall rule id {rule_id!r} is empty, too long or has quotes/braces")
    try:
        addr = ipaddress.ip_address(src)
    except ValueError:
        raise FirewallError(
            f"firewall rule {rule_id}: source {src!r} is not an IP address"
        ) from None
    if addr.version != 4:
        raise FirewallError(f"firewall rule {rule_id}: only IPv4 sources are supported ({src})")
    if not 0 < dport < 65536:
        raise FirewallError(f"firewall rule {rule_id}: port {dport} is out of range")
    if timeout_s <= 0:
        raise FirewallError(f"firewall rule {rule_id}: timeout must be positive, got {timeout_s}")
    return str(addr)
