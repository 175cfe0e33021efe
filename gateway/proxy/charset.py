"""Can a text body be edited as bytes? (No decode/encode round trip for the usual pages.)

The device address, the session address and the banner are ASCII. In an
ASCII-compatible, stateless charset (UTF-8, Latin-1, Windows-125x, Shift_JIS,
GBK, Big5...) an ASCII byte in the body always is that ASCII character (``<``,
``/``, digits and letters are never trail bytes of these multi-byte charsets that
matter here), so addresses can be found and replaced on the bytes directly.
UTF-16/32, UTF-7, EBCDIC and the ISO-2022 family must be decoded first.
"""

from __future__ import annotations

import codecs
from functools import lru_cache

from mitmproxy.net.http.headers import infer_content_encoding

# browsers look for <meta charset> in the first 1024 bytes only
_PRESCAN_BYTES = 1024
_PROBE = "<a href='/x:1'>?</a> 09AZaz.%\\\""
_STATEFUL = ("iso2022", "utf_7", "hz")


@lru_cache(maxsize=64)
def _codec_is_ascii_compatible(name: str) -> bool:
    try:
        info = codecs.lookup(name)
    except LookupError:
        return False
    if info.name.replace("-", "_").startswith(_STATEFUL):
        return False
    try:
        return _PROBE.encode(info.name) == _PROBE.encode("ascii")
    except (UnicodeError, LookupError):
        return False


def body_charset(content_type: str, content: bytes) -> str:
    """The charset mitmproxy would decode this body with (BOM, header, then a <meta> pre-scan)."""
    return infer_content_encoding(content_type, content[:_PRESCAN_BYTES]) or "utf-8"


def editable_as_bytes(content_type: str, content: bytes) -> bool:
    """True when ASCII strings can be searched and inserted in ``content`` without decoding it."""
    return _codec_is_ascii_compatible(body_charset(content_type, content).lower())
