"""Per-vendor rules, parsed once from ``vendor_endpoints.toml``: known EWS transfer endpoints
(``[[endpoint]]``) and transfer-budget overrides (``[[profile]]``)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from gateway.proxy.limits import ProxyLimits
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


# ProxyLimits fields a vendor profile may override (budgets and content thresholds)
PROFILE_KEYS = frozenset(
    {"request_budget", "session_budget", "encoded_min_upload", "encoded_min_download", "max_form_body",
     "encoded_allowance_download", "encoded_allowance_upload", "encoded_session_allowance",
     "max_text_body", "max_json_body", "max_font_body", "max_svg_body"}
)


@dataclass(frozen=True, slots=True)
class VendorProfile:
    """Budget overrides for one vendor's devices, chosen by the vendor name discovered over SNMP."""

    vendor: str
    names: tuple[str, ...]  # lower-case substrings of the discovered vendor name
    overrides: tuple[tuple[str, int], ...]

    def matches(self, discovered: str) -> bool:
        lowered = discovered.lower()
        return any(name in lowered for name in self.names)

    def apply(self, limits: ProxyLimits) -> ProxyLimits:
        return replace(limits, **dict(self.overrides))


@dataclass(frozen=True, slots=True)
class VendorEndpoints:
    endpoints: tuple[TransferEndpoint, ...]
    profiles: tuple[VendorProfile, ...] = field(default=())

    def match(self, method: str, path: str, query: str = "") -> TransferEndpoint | None:
        for endpoint in self.endpoints:
            if endpoint.matches(method, path, query):
                return endpoint
        return None

    def limits_for(self, vendor: str, defaults: ProxyLimits) -> ProxyLimits:
        """``defaults`` with the overrides of the first profile naming ``vendor`` (if any)."""
        if vendor:
            for profile in self.profiles:
                if profile.matches(vendor):
                    return profile.apply(defaults)
        return defaults


def _parse_profiles(data: dict[str, object], source: str) -> tuple[VendorProfile, ...]:
    entries = data.get("profile", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: 'profile' must be an array of tables ([[profile]])")
    profiles: list[VendorProfile] = []
    for i, entry in enumerate(entries, 1):
        where = f"{source}: profile #{i}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: must be a table")
        unknown = set(entry) - {"vendor", "names"} - PROFILE_KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown keys {sorted(unknown)} (budgets: {sorted(PROFILE_KEYS)})")
        vendor = entry.get("vendor")
        if not isinstance(vendor, str) or not vendor:
            raise ConfigError(f"{where}: 'vendor' must be a non-empty string")
        names = entry.get("names", [vendor])
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            raise ConfigError(f"{where}: 'names' must be a list of vendor names as discovered")
        overrides: list[tuple[str, int]] = []
        for key in sorted(PROFILE_KEYS & set(entry)):
            value = entry[key]
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{where}: '{key}' must be a positive number of bytes, got {value!r}")
            overrides.append((key, value))
        profiles.append(VendorProfile(vendor, tuple(n.lower() for n in names), tuple(overrides)))
    return tuple(profiles)


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
    return VendorEndpoints(tuple(parsed), _parse_profiles(data, source))


def load_vendor_endpoints(path: Path = DATA_FILE) -> VendorEndpoints:
    return parse_vendor_endpoints(path.read_text(encoding="utf-8"), source=str(path))
