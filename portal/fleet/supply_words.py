"""RFC 3805 supply kinds (prtMarkerSuppliesType names, e.g. ``tonerCartridge``) in words for people."""

from __future__ import annotations

import re

_SPECIAL = {
    "opc": "drum (OPC)",
    "unknown": "",  # the printer does not say what kind of supply it is: nothing to show
    "other": "other",
}


def supply_kind_words(kind: str) -> str:
    """``tonerCartridge`` -> ``toner cartridge``; ``opc`` -> ``drum (OPC)``; ``unknown`` -> ``""``."""
    if kind in _SPECIAL:
        return _SPECIAL[kind]
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", kind).lower()
