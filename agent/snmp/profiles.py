"""Vendor profiles (serial and model fallbacks, vendor counters) loaded from data.

Parsed once at start-up into frozen dataclasses; a bad profile file fails
then with a ``ConfigError``, never halfway through a poll.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from agent.snmp.oids import is_under, oid_tuple
from printgate.errors import ConfigError

DEFAULT_FILE = Path(__file__).with_name("vendor_profiles.toml")


@dataclass(frozen=True, slots=True)
class VendorProfile:
    prefix: str
    vendor: str
    serial_oids: tuple[str, ...] = ()
    serial_in_sys_descr: re.Pattern[str] | None = None
    counters: tuple[tuple[str, str], ...] = field(default=())  # (name, oid)
    device_id_oids: tuple[str, ...] = ()  # IEEE 1284 device-ID strings (MDL: model)

    @property
    def identity_oids(self) -> tuple[str, ...]:
        """Scalars a printer of this vendor is asked for at discovery (one GET)."""
        return (*self.serial_oids, *DEVICE_ID_OIDS, *self.device_id_oids)


# HP's device-ID object: JetDirect and many third-party print servers serve it
DEVICE_ID_OIDS = ("1.3.6.1.4.1.11.2.3.9.1.1.7.0",)

UNKNOWN = VendorProfile(prefix="", vendor="")


def parse_profiles(text: str, *, source: str = "<profiles>") -> tuple[VendorProfile, ...]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"vendor profiles {source}: not valid TOML: {exc}") from exc
    out: list[VendorProfile] = []
    for n, raw in enumerate(data.get("profile", []), start=1):
        where = f"vendor profiles {source}, profile #{n}"
        try:
            prefix, vendor = str(raw["prefix"]), str(raw["vendor"])
            oid_tuple(prefix)
            serials = tuple(str(o) for o in raw.get("serial_oids", []))
            for o in serials:
                oid_tuple(o)
            rx = raw.get("serial_in_sys_descr")
            pattern = re.compile(str(rx)) if rx else None
            if pattern is not None and pattern.groups != 1:
                raise ValueError("serial_in_sys_descr needs exactly one group")
            counters = tuple((str(k), str(v)) for k, v in dict(raw.get("counters", {})).items())
            for _, o in counters:
                oid_tuple(o)
            device_ids = tuple(str(o) for o in raw.get("device_id_oids", []))
            for o in device_ids:
                oid_tuple(o)
        except (KeyError, ValueError, TypeError, re.error) as exc:
            raise ConfigError(f"{where}: {exc!r}; each profile needs prefix, vendor and numeric OIDs") from exc
        out.append(VendorProfile(prefix, vendor, serials, pattern, counters, device_ids))
    return tuple(out)


@cache
def default_profiles() -> tuple[VendorProfile, ...]:
    return parse_profiles(DEFAULT_FILE.read_text(), source=str(DEFAULT_FILE))


def profile_for(sys_object_id: str | None, profiles: Sequence[VendorProfile] | None = None) -> VendorProfile:
    """The profile with the longest prefix matching ``sys_object_id``."""
    if not sys_object_id:
        return UNKNOWN
    best = UNKNOWN
    for p in default_profiles() if profiles is None else profiles:
        if is_under(sys_object_id, p.prefix) and len(p.prefix) > len(best.prefix):
            best = p
    return best
