"""Known EWS transfer endpoints per vendor, parsed once from ``vendor_endpoints.toml``."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from printgate.errors import ConfigError

DATA_FILE = Path(__file__).with_name("vendor_endpoints.toml")
KINDS = frozenset(
    {"firmware_upload", "backup", "restore", "address_book", "print_job", "driver_upload",
     "certificate", "log_export"}
)


@dataclass(frozen=True, slots=True)
class TransferEndpoint:
    vendor: str
    kind: str
    methods: frozenset[str] | None  # None = any method
    path: re.Pattern[str]
    query: re.Pattern[str] | None = None

    def matches(self, method: str, path: str, query: str) -> bool:
        if self.methods is not None and method.upper() not in self.methods:
            return False
        if not self.path.search(path):
            return False
        return self.query is None or bool(self.query.search(query))


@dataclass(frozen=True, slots=True)
class VendorEndpoints:
    endpoints: tuple[TransferEndpoint, ...]

    def match(self, method: str, path: str, query: str = "") -> TransferEndpoint | None:
        for endpoint in self.endpoints:
            if endpoint.matches(method, path, query):
                return endpoint
        return None


def parse_vendor_endpoints(text: str, *, source: str = "<text>") -> VendorEndpoints:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    entries = data.get("endpoint", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: 'endpoint' must be an array of tables ([[endpoint]])")
    parsed: list[TransferEndpoint] = []
    for i, entry in enumerate(entries, 1):
        where = f"{source}: endpoint #{i}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: must be a table")
        unknown = set(entry) - {"vendor", "kind", "methods", "path", "query"}
        if unknown:
            raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
        vendor, kind, path = entry.get("vendor"), entry.get("kind"), entry.get("path")
        if not isinstance(vendor, str) or not vendor:
            raise ConfigError(f"{where}: 'vendor' must be a non-empty string")
        if kind not in KINDS:
            raise ConfigError(f"{where}: 'kind' must be one of {sorted(KINDS)}, got {kind!r}")
        if not isinstance(path, str) or not path:
            raise ConfigError(f"{where}: 'path' must be a non-empty regular expression")
        methods_raw = entry.get("methods", "*")
        methods: frozenset[str] | None
        if methods_raw == "*":
            methods = None
        elif isinstance(methods_raw, list) and methods_raw and all(isinstance(m, str) for m in methods_raw):
            methods = frozenset(m.upper() for m in methods_raw)
        else:
            raise ConfigError(f"{where}: 'methods' must be \"*\" or a list of HTTP methods")
        query_raw = entry.get("query")
        if query_raw is not None and not isinstance(query_raw, str):
            raise ConfigError(f"{where}: 'query' must be a regular expression string")
        try:
            path_re = re.compile(path, re.IGNORECASE)
            query_re = re.compile(query_raw, re.IGNORECASE) if query_raw else None
        except re.error as exc:
            raise ConfigError(f"{where}: bad regular expression: {exc}") from exc
        parsed.append(TransferEndpoint(vendor, kind, methods, path_re, query_re))
    return VendorEndpoints(tuple(parsed))


def load_vendor_endpoints(path: Path = DATA_FILE) -> VendorEndpoints:
    return parse_vendor_endpoints(path.read_text(encoding="utf-8"), source=str(path))
