"""Device- and user-supplied strings made valid for the audit trail.

mitmproxy decodes a request line or header it cannot read as UTF-8 with
``surrogateescape``: ``GET /\\xff`` arrives as the path ``"/\\udcff"``. A lone
surrogate cannot be written as UTF-8, so the audit record's canonical JSON
(RFC 8785) cannot be built and the record is lost. Every string the proxy puts
into an audit event passes through ``safe_value`` first: an escaped byte
(U+DC80..U+DCFF) becomes ``%XX`` (the byte it stood for), any other surrogate
``%uXXXX``; valid text is returned as it is (one C-speed check).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from printgate.domain import AuditEventIn

_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"%{code - 0xDC00:02X}" if 0xDC80 <= code <= 0xDCFF else f"%u{code:04X}"


def safe_text(value: str) -> str:
    """``value`` with every lone surrogate percent-escaped (valid UTF-8 once encoded)."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub(_escape, value)
    return value


def safe_value(value: Any) -> Any:
    """``value`` (str, dict, list, tuple, other JSON scalars) with every string made valid, keys included."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, dict):
        return {safe_text(k) if isinstance(k, str) else k: safe_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [safe_value(v) for v in value]
    return value


def _is_safe(value: Any) -> bool:
    """Every string of ``value`` (keys too) is valid as it is: nothing to rebuild (the common case,
    checked without copying)."""
    if isinstance(value, str):
        return value.isascii() or safe_text(value) is value
    if isinstance(value, dict):
        return all((not isinstance(k, str) or _is_safe(k)) and _is_safe(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_is_safe(v) for v in value)
    return True


def safe_event(event: AuditEventIn) -> AuditEventIn:
    """The event with its details, personal values and actor made valid."""
    if _is_safe(event.details) and _is_safe(event.personal) and (event.actor is None or _is_safe(event.actor)):
        return event
    details = safe_value(event.details)
    personal = safe_value(event.personal)
    actor = safe_text(event.actor) if event.actor is not None else None
    if details == event.details and personal == event.personal and actor == event.actor:
        return event
    return dataclasses.replace(event, details=details, personal=personal, actor=actor)
