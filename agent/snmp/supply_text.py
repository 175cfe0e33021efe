"""Supply names as people read them: decoded from what printers actually send.

``prtMarkerSuppliesDescription`` is "localized" text in theory; in practice:
- UTF-8, or a legacy 8-bit code page (Latin-1/CP1252) that is not UTF-8;
- NUL-padded or NUL-terminated;
- HP JetDirect firmware wraps long names as text, a newline, then the rest as
  hex pairs ("Black Cartridge \\n38 32 37 41 20 48 50 ... 00") - shown raw, the
  name ends in hex;
- the whole name as hex pairs ("42 6C 61 63 6B 20 ...");
- HP names end in "HP <part number>"; without a part number the firmware writes a
  placeholder ("Clean Rollers HP None" on the M880): the placeholder and its brand
  tag are dropped ("Clean Rollers").
Pure; tested on the recordings.
"""

from __future__ import annotations

import re

_HEX_PAIR = re.compile(r"^[0-9A-Fa-f]{2}$")
# a missing part number printed as a word, after an optional brand tag, at the end of the name
_NO_PART_NUMBER = re.compile(r"(?:\s+HP)?\s+(?:None|NONE|null|NULL|\(null\)|N/A)$")
COLOUR_WORDS = (
    "black", "cyan", "magenta", "yellow", "light cyan", "light magenta", "photo black", "matte black",
    "grey", "gray", "light black", "red", "blue", "green", "orange", "violet", "white", "clear",
)


def _bytes_to_text(raw: bytes) -> str:
    raw = raw.split(b"\x00", 1)[0] if raw.endswith(b"\x00") or b"\x00 " in raw else raw.replace(b"\x00", b"")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def _hex_to_text(text: str) -> str | None:
    """Whitespace-separated hex pairs ("42 6C 61 00") as text, else None."""
    pairs = text.split()
    if not pairs or not all(_HEX_PAIR.match(p) for p in pairs):
        return None
    return _bytes_to_text(bytes.fromhex("".join(pairs)))


def supply_description(raw: bytes) -> str:
    """The readable name of a supply from the raw octets of its description."""
    text = _bytes_to_text(raw)
    head, sep, tail = text.partition("\n")
    if sep:
        decoded = _hex_to_text(tail)
        if decoded is not None:
            text = head + decoded
    elif (decoded := _hex_to_text(text)) is not None and len(text.split()) > 1:
        text = decoded
    text = " ".join("".join(ch for ch in text if ch.isprintable()).split())
    return (_NO_PART_NUMBER.sub("", text) or text)[:1024]


def colour_in_name(name: str) -> str | None:
    """A colour word in a supply's name ("Cyan Cartridge" -> "cyan"), longest match first."""
    lowered = f" {name.lower()} "
    for word in sorted(COLOUR_WORDS, key=len, reverse=True):
        if f" {word} " in lowered or lowered.startswith(f" {word}"):
            return word
    return None
