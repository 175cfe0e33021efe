"""Pure URL rewriting between a device's address and its session host.

Towards the browser every form of the device address is replaced: absolute
(``http://``, ``https://``, ``ws://``, ``wss://``), protocol-relative,
JSON-escaped (``http:\\/\\/``), percent-encoded (``http%3A%2F%2F``) and bare
``host[:port]`` (JavaScript string literals). Towards the device the session
origin is mapped back. No I/O; the addon feeds it headers and bodies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from printgate.errors import ConfigError


def _default_port(scheme: str) -> int:
    return 443 if scheme in ("https", "wss") else 80


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int

    @classmethod
    def parse(cls, origin: str) -> Origin:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"not an http(s) origin: {origin!r} (expected e.g. http://192.0.2.7:8080)")
        return cls(parts.scheme, parts.hostname.lower(), parts.port or _default_port(parts.scheme))

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _default_port(self.scheme) else f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.netloc}"


_PREFIX = re.compile(r"(?:(?P<scheme>\b(?:https?|wss?))(?P<colon>:|%3[aA]))?(?P<slashes>(?:\\?/|%2[fF]){2})?\Z", re.IGNORECASE)
_PREFIX_WINDOW = 16  # longest prefix: "https%3A%2F%2F"


@dataclass(frozen=True, slots=True)
class _HostMatcher:
    """Finds one host quickly (literal search), then checks boundaries, port and prefix around it."""

    literal: re.Pattern[str]
    at_host: re.Pattern[str]

    @classmethod
    def build(cls, host: str) -> _HostMatcher:
        is_ip = host[:1].isdigit() or ":" in host
        behind = r"(?<![0-9.])" if is_ip else r"(?:(?<![\w.-])|(?<=%2[fF])|(?<=%40))"
        ahead = r"(?![0-9])(?!\.[0-9])" if is_ip else r"(?![\w-])(?!\.[\w-])"
        return cls(
            re.compile(re.escape(host), re.IGNORECASE),
            re.compile(
                behind + re.escape(host) + r"(?:(?P<portsep>:|%3[aA])(?P<port>[0-9]{1,5}))?" + ahead,
                re.IGNORECASE,
            ),
        )

    def replace(self, text: str, target: Origin) -> str:
        out: list[str] = []
        last = 0
        for found in self.literal.finditer(text):
            start = found.start()
            if start < last:
                continue
            m = self.at_host.match(text, start)
            if m is None:
                continue
            window_start = max(last, start - _PREFIX_WINDOW)
            p = _PREFIX.search(text, window_start, start)
            prefix_start = p.start() if p is not None else start
            out.append(text[last:prefix_start])
            out.append(_render(p, m, target))
            last = m.end()
        if not out:
            return text
        out.append(text[last:])
        return "".join(out)


def _render(prefix: re.Match[str] | None, host: re.Match[str], target: Origin) -> str:
    out = []
    if prefix is not None and prefix.group("scheme"):
        secure = target.scheme == "https"
        if prefix.group("scheme").lower() in ("ws", "wss"):
            out.append("wss" if secure else "ws")
        else:
            out.append(target.scheme)
        out.append(prefix.group("colon"))
    if prefix is not None and prefix.group("slashes"):
        out.append(prefix.group("slashes"))
    netloc = target.netloc
    if host.group("portsep") and host.group("portsep") != ":":
        netloc = netloc.replace(":", host.group("portsep"))
    out.append(netloc)
    return "".join(out)


class _Finder:
    """Is a host named anywhere in a text or body? (case-insensitive, without copying the body)"""

    __slots__ = ("_data", "_host", "_host_bytes", "_text")

    def __init__(self, host: str) -> None:
        cased = host.lower() != host.upper()
        self._text = re.compile(re.escape(host), re.IGNORECASE) if cased else None
        self._data = re.compile(re.escape(host.encode()), re.IGNORECASE) if cased else None
        self._host = host
        self._host_bytes = host.encode()

    def in_text(self, text: str) -> bool:
        return self._host in text if self._text is None else self._text.search(text) is not None

    def in_data(self, data: bytes) -> bool:
        return self._host_bytes in data if self._data is None else self._data.search(data) is not None


class UrlRewriter:
    """Rewrites between ``device`` (as the device's pages name it) and ``session`` (the browser's view).

    The ``*_bytes`` forms work on ASCII-compatible bodies without decoding them
    (see ``gateway.proxy.charset``); a body that does not name the address is
    returned as the same object, untouched.
    """

    def __init__(self, device_origin: str, session_origin: str) -> None:
        self.device = Origin.parse(device_origin)
        self.session = Origin.parse(session_origin)
        self._to_browser = _HostMatcher.build(self.device.host)
        self._to_device = _HostMatcher.build(self.session.host)
        self._device = _Finder(self.device.host)
        self._session = _Finder(self.session.host)

    # --- rewriting -------------------------------------------------------------
    def to_browser(self, text: str) -> str:
        if not self._device.in_text(text):
            return text
        return self._to_browser.replace(text, self.session)

    def to_browser_bytes(self, data: bytes) -> bytes:
        if not self._device.in_data(data):
            return data
        return self._to_browser.replace(data.decode("latin-1"), self.session).encode("latin-1")

    def to_device(self, text: str) -> str:
        if not self._session.in_text(text):
            return text
        return self._to_device.replace(text, self.device)

    def to_device_bytes(self, data: bytes) -> bytes:
        if not self._session.in_data(data):
            return data
        return self._to_device.replace(data.decode("latin-1"), self.device).encode("latin-1")

    def mentions_device(self, data: bytes) -> bool:
        return self._device.in_data(data)

    # --- cookies ------------------------------------------------------------
    def set_cookie_to_browser(self, header: str, *, reserved_names: frozenset[str]) -> str | None:
        """Make a device cookie host-only on the session host; None drops it."""
        parts = [p.strip() for p in header.split(";")]
        if not parts or "=" not in parts[0]:
            return None
        name = parts[0].split("=", 1)[0].strip()
        if name in reserved_names or name.lower().startswith("__host-printgate"):
            return None
        kept = [parts[0]]
        secure = self.session.scheme == "https"
        for attr in parts[1:]:
            key = attr.split("=", 1)[0].strip().lower()
            if key == "domain":
                continue  # host-only: never shared with other session hosts
            if key == "secure" and not secure:
                continue
            if key == "samesite" and not secure and attr.split("=", 1)[-1].strip().lower() == "none":
                kept.append("SameSite=Lax")
                continue
            if key == "path":
                kept.append(self.to_browser(attr))
                continue
            if attr:
                kept.append(attr)
        return "; ".join(kept)

