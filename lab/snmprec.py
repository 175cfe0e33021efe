"""Read snmpsim ``.snmprec`` recordings into plain SNMP values (tests' ground truth)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from agent.snmp.values import Kind, SnmpValue

_KINDS = {
    "2": Kind.INTEGER, "4": Kind.OCTETS, "5": Kind.NULL, "6": Kind.OID, "64": Kind.IPADDRESS,
    "65": Kind.COUNTER32, "66": Kind.GAUGE32, "67": Kind.TIMETICKS, "68": Kind.OPAQUE,
    "70": Kind.COUNTER64,
}


def parse_line(line: str) -> tuple[str, SnmpValue] | None:
    parts = line.rstrip("\n").split("|", 2)
    if len(parts) != 3 or not all(p.isdigit() for p in parts[0].split(".")):
        return None
    oid, tag, raw = parts
    hexed = tag.endswith("x")
    kind = _KINDS.get(tag.rstrip("x"))
    if kind is None:
        return None
    try:
        data: bytes = bytes.fromhex(raw) if hexed else raw.encode()
    except ValueError:
        return None
    if kind in (Kind.OCTETS, Kind.OPAQUE):
        return oid, SnmpValue(kind, data)
    if kind is Kind.IPADDRESS:
        try:
            return oid, SnmpValue(kind, data if hexed else ipaddress.IPv4Address(raw).packed)
        except ValueError:
            return None
    if kind is Kind.OID:
        return oid, SnmpValue(kind, raw)
    if kind is Kind.NULL:
        return oid, SnmpValue(kind)
    try:
        return oid, SnmpValue(kind, int(raw))
    except ValueError:  # anonymised junk such as "6git3159": not servable either
        return None


def load(path: Path) -> dict[str, SnmpValue]:
    out: dict[str, SnmpValue] = {}
    for line in path.read_text(errors="replace").splitlines():
        parsed = parse_line(line)
        if parsed is not None:
            out[parsed[0]] = parsed[1]
    return out
