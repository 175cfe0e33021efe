"""SNMP values as plain data, independent of pysnmp (and of snmpsim's format).

The transport converts pysnmp objects into ``SnmpValue``; tests convert
``.snmprec`` lines into the same thing. Parsing only ever sees these.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

MAX_TEXT = 1024  # longer strings are cut (printer firmware sends junk)


class Kind(enum.StrEnum):
    INTEGER = "integer"
    OCTETS = "octets"
    OID = "oid"
    IPADDRESS = "ipaddress"
    COUNTER32 = "counter32"
    GAUGE32 = "gauge32"
    TIMETICKS = "timeticks"
    COUNTER64 = "counter64"
    NULL = "null"
    OPAQUE = "opaque"
    NO_SUCH_OBJECT = "noSuchObject"
    NO_SUCH_INSTANCE = "noSuchInstance"
    END_OF_MIB = "endOfMibView"


NUMERIC = frozenset({Kind.INTEGER, Kind.COUNTER32, Kind.GAUGE32, Kind.TIMETICKS, Kind.COUNTER64})
ABSENT = frozenset({Kind.NO_SUCH_OBJECT, Kind.NO_SUCH_INSTANCE, Kind.END_OF_MIB, Kind.NULL})


class WrongType(ValueError):
    """A value is not of the type the MIB defines (recorded as an error)."""


@dataclass(frozen=True, slots=True)
class SnmpValue:
    kind: Kind
    value: int | bytes | str | None = None

    @property
    def absent(self) -> bool:
        return self.kind in ABSENT

    def as_int(self) -> int:
        if self.kind in NUMERIC and isinstance(self.value, int):
            return self.value
        raise WrongType(f"expected a number, got {self.kind}")

    def as_bytes(self) -> bytes:
        if self.kind in (Kind.OCTETS, Kind.OPAQUE, Kind.IPADDRESS) and isinstance(self.value, bytes):
            return self.value
        raise WrongType(f"expected an octet string, got {self.kind}")

    def as_text(self) -> str:
        raw = self.as_bytes()[:MAX_TEXT]
        text = raw.decode("utf-8", errors="replace").replace("\x00", "").strip()
        return "".join(ch for ch in text if ch.isprintable())

    def as_oid(self) -> str:
        if self.kind is Kind.OID and isinstance(self.value, str):
            return self.value
        raise WrongType(f"expected an object identifier, got {self.kind}")


Varbinds = Mapping[str, SnmpValue]
