"""Collaborators every addon may need, handed to ``default_addons(deps)``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from gateway.proxy.budgets import SharedTally
from gateway.proxy.limits import ProxyLimits
from gateway.proxy.routes import RouteTable
from gateway.proxy.vendor_profiles import VendorEndpoints, load_vendor_endpoints
from printgate.interfaces import AuditSink

EndRequest = Callable[[str], Awaitable[None]]
SessionTimeout = Callable[[str, str], Awaitable[None]]
# asks the broker/policy for more time; returns the new expiry or None when refused
ExtendRequest = Callable[[str], Awaitable[datetime | None]]


@dataclass(slots=True)
class PublicAddress:
    """How the technician's browser reaches the proxy (scheme and port of session hosts)."""

    scheme: str = "http"
    port: int = 0  # filled in by DwaProxy.start() when listening on port 0

    def origin(self, host: str) -> str:
        default = 443 if self.scheme == "https" else 80
        port = "" if self.port in (0, default) else f":{self.port}"
        return f"{self.scheme}://{host}{port}"

    def netloc(self, host: str) -> str:
        return self.origin(host).split("://", 1)[1]


@dataclass(slots=True)
class ProxyDeps:
    routes: RouteTable
    audit: AuditSink
    dwa_domain: str
    on_end_request: EndRequest
    csrf_key: bytes
    limits: ProxyLimits = field(default_factory=ProxyLimits)
    public: PublicAddress = field(default_factory=PublicAddress)
    on_session_timeout: SessionTimeout | None = None
    on_extend_request: ExtendRequest | None = None
    vendor_endpoints: VendorEndpoints = field(default_factory=load_vendor_endpoints)
    portal_url: str = ""  # the portal's public URL: our own pages link back to it
    budget_tally: SharedTally | None = None  # proxy workers: the pool's one tally of session budgets
    node_label: str | None = None  # this node's label in session hosts (several nodes; gateway/session_hosts.py)

    @property
    def secure_cookies(self) -> bool:
        """Mark the session cookie ``Secure``: over TLS, and on ``*.localhost``, which browsers
        treat as a secure context even over plain http (the demo)."""
        domain = self.dwa_domain.strip(".").lower()
        return self.public.scheme == "https" or domain == "localhost" or domain.endswith(".localhost")
