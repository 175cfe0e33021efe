"""Send each request to its session's upstream (the tunnel's Unix socket or loopback port)."""

from __future__ import annotations

from mitmproxy import http
from mitmproxy.proxy import server_hooks

from gateway.proxy.decision import already_answered, route_of
from gateway.proxy.unix_upstream import is_socket_path


class RouteUpstream:
    def request(self, flow: http.HTTPFlow) -> None:
        if already_answered(flow):
            return
        route = route_of(flow)
        if route is None:  # fail closed: no route, no upstream
            flow.kill()
            return
        flow.request.scheme = route.device_scheme
        flow.request.host = route.upstream_host
        flow.request.port = route.upstream_port

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        """No TLS server name towards a device behind a socket file (never the gateway's path)."""
        address = data.server.address
        if address is not None and is_socket_path(str(address[0])):
            data.server.sni = ""
