"""Send each request to its session's upstream (the tunnel's loopback port)."""

from __future__ import annotations

from mitmproxy import http

from gateway.proxy.decision import already_answered, route_of


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
