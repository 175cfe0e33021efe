"""SVG is allowed only as a plain image: text, no script, no foreign content, no embedded file."""

from __future__ import annotations

import re

# things an image never needs: script, event handlers, HTML inside, external entities,
# links to scripts, embedded non-image data
_ACTIVE = re.compile(
    rb"<script|<foreignobject|<iframe|<embed|<object|<handler|<!entity|<!doctype[^>]*\[|\son[a-z]+\s*="
    rb"|javascript:|xlink:href\s*=\s*['\"]?(?!#|data:image/)[a-z]+:|href\s*=\s*['\"]?(?!#|data:image/)[a-z]+:",
    re.IGNORECASE,
)


def svg_problem(body: bytes) -> str | None:
    """Why ``body`` is not a plain SVG image (None: it is one)."""
    head = body[:1024].lstrip().lower()
    if not head.startswith((b"<?xml", b"<svg", b"<!--", b"<!doctype svg")) or b"<svg" not in body[:4096].lower():
        return "it is not an SVG document"
    m = _ACTIVE.search(body)
    if m is not None:
        return f"it carries active content ({m.group().decode('ascii', 'replace').strip()[:24]})"
    return None
