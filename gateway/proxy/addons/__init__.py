"""The proxy's policy, one addon per behaviour; ``default_addons`` gives their order."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.proxy.deps import ProxyDeps


def default_addons(deps: ProxyDeps, *, connection_closer: object | None = None) -> list[object]:
    """The ordered pipeline. Request-side addons skip flows an earlier one answered;
    the audit addon is last and reads ``flow.metadata["printgate.decision"]``."""
    from gateway.proxy.addons.audit_requests import AuditRequests
    from gateway.proxy.addons.banner import Banner
    from gateway.proxy.addons.block_downloads import BlockDownloads
    from gateway.proxy.addons.block_uploads import BlockUploads
    from gateway.proxy.addons.bounded_decoding import BoundedDecoding
    from gateway.proxy.addons.inject_credentials import InjectCredentials
    from gateway.proxy.addons.request_line import RequestLineGuard
    from gateway.proxy.addons.rewrite_urls import RewriteUrls
    from gateway.proxy.addons.route_upstream import RouteUpstream
    from gateway.proxy.addons.security_headers import SecurityHeaders
    from gateway.proxy.addons.service_workers import ServiceWorkerGuard
    from gateway.proxy.addons.session_auth import SessionAuth
    from gateway.proxy.addons.session_limits import SessionLimits
    from gateway.proxy.addons.transfer_budget import TransferBudget
    from gateway.proxy.addons.upstream_tls import UpstreamTls
    from gateway.proxy.addons.vendor_endpoints import VendorEndpointGuard
    from gateway.proxy.addons.websocket_bound import WebSocketBound
    from gateway.proxy.addons.websocket_guard import WebSocketGuard

    budget = TransferBudget(deps.limits, deps.vendor_endpoints, deps.routes, deps.budget_tally, deps.public)
    return [
        SessionAuth(deps),
        RequestLineGuard(deps.public),
        ServiceWorkerGuard(),
        SessionLimits(deps, connection_closer),
        VendorEndpointGuard(deps.vendor_endpoints),
        BlockUploads(deps.limits, deps.vendor_endpoints),
        budget,
        RouteUpstream(),
        UpstreamTls(deps.routes),
        BoundedDecoding(deps.limits, deps.vendor_endpoints),  # before any addon reads a response body
        InjectCredentials(deps.routes, deps.audit),  # before every response addon: they see its answer
        BlockDownloads(deps.limits, deps.routes, deps.vendor_endpoints, trust_font_dest=deps.budget_tally is not None),
        RewriteUrls(deps.public),
        WebSocketGuard(deps.limits, budget, deps.audit),
        WebSocketBound(deps.audit),  # installs the bound on buffered WebSocket messages
        Banner(deps),
        SecurityHeaders(deps.public),
        AuditRequests(deps.audit),
    ]
