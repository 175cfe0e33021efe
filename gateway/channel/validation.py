"""What an agent sends is checked at the edge, before any handler or store sees it.

``UploadInventory``: each device must have an address that parses, a port in range, a
known scheme and bounded strings; a bad device is refused on its own (with its reason),
the others go on; an inventory with nothing valid, or too many devices, is refused whole
(``INVALID_ARGUMENT``). ``Heartbeat``: timestamps must be sane (0 for "none", otherwise
between 2000 and a day ahead of the gateway's clock), counts not negative, lists and
strings bounded; otherwise the call is refused whole. Nothing here raises: each check
answers with the reason, or None.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass

from printgate.wire import agent_pb2 as pb

MAX_DEVICES = 4096
DEVICE_STRINGS = {"serial": 128, "mac": 64, "model": 256, "sys_object_id": 256, "vendor": 128,
                  "sys_name": 256, "location": 256, "tls_fingerprint": 256, "excluded_reason": 256}
SCHEMES = ("", "http", "https")
EARLIEST_MS = 946_684_800_000  # 2000-01-01
AHEAD_MS = 86_400_000  # a day: clocks of agents may run ahead, not years
MAX_TASKS, MAX_DROPS, MAX_REFUSALS = 64, 1000, 1000


@dataclass(frozen=True, slots=True)
class InventoryCheck:
    devices: list[pb.DiscoveredDevice]  # the valid ones
    refused: list[str]  # one reason per refused device
    problem: str | None = None  # the whole inventory is refused


def device_problem(d: pb.DiscoveredDevice) -> str | None:
    try:
        ipaddress.ip_address(d.ip)
    except ValueError:
        return f"device address {d.ip[:64]!r} is not an IP address"
    if not 0 <= d.ews_port <= 65535:
        return f"device {d.ip}: EWS port {d.ews_port} is out of range 0-65535"
    if d.ews_scheme not in SCHEMES:
        return f"device {d.ip}: EWS scheme {d.ews_scheme[:16]!r} is not http or https"
    for name, limit in DEVICE_STRINGS.items():
        if len(getattr(d, name)) > limit:
            return f"device {d.ip}: {name} is longer than {limit} characters"
    return None


def check_inventory(inventory: pb.Inventory) -> InventoryCheck:
    if len(inventory.devices) > MAX_DEVICES:
        return InventoryCheck([], [], f"an inventory has at most {MAX_DEVICES} devices, "
                                      f"not {len(inventory.devices)}")
    problem = timestamp_problem("scanned_at_ms", inventory.scanned_at_ms)
    if problem:
        return InventoryCheck([], [], problem)
    good: list[pb.DiscoveredDevice] = []
    refused: list[str] = []
    for d in inventory.devices:
        why = device_problem(d)
        if why is None:
            good.append(d)
        else:
            refused.append(why)
    if refused and not good:
        return InventoryCheck([], refused, f"no device of the inventory is valid: {refused[0]}"
                                           + (f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""))
    return InventoryCheck(good, refused)


def timestamp_problem(name: str, ms: int, *, now_ms: int | None = None) -> str | None:
    if ms == 0:
        return None
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    if not EARLIEST_MS <= ms <= now + AHEAD_MS:
        return f"{name} {ms} is not a sane time in milliseconds since 1970 (0, or 2000 to a day from now)"
    return None


def heartbeat_problem(h: pb.HeartbeatRequest) -> str | None:
    if len(h.tasks) > MAX_TASKS or len(h.drops) > MAX_DROPS or len(h.relay_refusals) > MAX_REFUSALS:
        return (f"a heartbeat carries at most {MAX_TASKS} tasks, {MAX_DROPS} drop counters and "
                f"{MAX_REFUSALS} relay refusals")
    if len(h.agent_version) > 64 or len(h.degraded) > 1000:
        return "agent_version (64) or degraded (1000 characters) is too long"
    if min(h.queue_length, h.printers, h.queued_bytes) < 0:
        return "queue_length, printers and queued_bytes cannot be negative"
    stamps = [("sent_at_ms", h.sent_at_ms), ("oldest_queued_ms", h.oldest_queued_ms)]
    for t in h.tasks:
        if len(t.name) > 64 or len(t.state) > 32 or len(t.last_error) > 2000 or t.restarts < 0:
            return f"task {t.name[:64]!r}: name/state/last_error too long or restarts negative"
        stamps.append(("tasks.last_error_at_ms", t.last_error_at_ms))
    for d in h.drops:
        if len(d.ip) > 64 or len(d.kind) > 64 or len(d.reason) > 200 or d.count < 0:
            return "a drop counter has a too long ip/kind/reason or a negative count"
        stamps += [("drops.first_at_ms", d.first_at_ms), ("drops.last_at_ms", d.last_at_ms)]
    stamps += [("relay_refusals.at_ms", r.at_ms) for r in h.relay_refusals]
    now = int(time.time() * 1000)
    for name, ms in stamps:
        problem = timestamp_problem(name, ms, now_ms=now)
        if problem:
            return problem
    return None
