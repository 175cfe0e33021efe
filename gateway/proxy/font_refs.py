"""Which fonts a session's device asked for in its own CSS: only those may be served."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

_URL = re.compile(rb"""url\(\s*(['"]?)([^'")\s]+)\1\s*\)""", re.IGNORECASE)
_FONT_EXT = (".woff", ".woff2", ".ttf", ".otf", ".eot")
_MAX_SESSIONS = 4096
_MAX_PER_SESSION = 256


def names_fonts(css: bytes) -> bool:
    """Whether ``css`` may name fonts at all: ``font_paths`` finds none in a body without it."""
    return b"@" in css and b"@font-face" in css  # fonts are declared in @font-face rules only


def font_paths(css: bytes, base_url: str) -> set[str]:
    """Paths of the font files a style sheet (or an HTML page's inline styles) references."""
    found: set[str] = set()
    if not names_fonts(css):
        return found
    for m in _URL.finditer(css):
        ref = m.group(2).decode("utf-8", "replace")
        if ref.startswith("data:"):
            continue
        path = urlsplit(urljoin(base_url, ref)).path
        if path.lower().endswith(_FONT_EXT):
            found.add(path)
    return found


class FontReferences:
    """Per session, the font paths its device's CSS named (bounded)."""

    def __init__(self) -> None:
        self._paths: dict[str, set[str]] = {}

    def record(self, session_id: str, css: bytes, base_url: str) -> None:
        paths = font_paths(css, base_url)
        if not paths:
            return
        if session_id not in self._paths and len(self._paths) >= _MAX_SESSIONS:
            self._paths.pop(next(iter(self._paths)))
        known = self._paths.setdefault(session_id, set())
        if len(known) + len(paths) <= _MAX_PER_SESSION:
            known.update(paths)

    def referenced(self, session_id: str, path: str) -> bool:
        return path in self._paths.get(session_id, ())

    def forget(self, session_id: str) -> None:
        self._paths.pop(session_id, None)
