"""RouteUpstream alone: a flow goes to its session's tunnel, a flow without a route is killed."""

from gateway.proxy.addons.route_upstream import RouteUpstream
from tests.unit.gateway.proxy.addons.flows import flow, route


def test_the_request_goes_to_the_sessions_upstream() -> None:
    f = flow(path="/status", with_route=route(upstream_host="127.0.0.1", upstream_port=40123,
                                              device_scheme="https"))
    RouteUpstream().request(f)
    assert (f.request.scheme, f.request.host, f.request.port) == ("https", "127.0.0.1", 40123)


def test_a_flow_without_a_route_is_killed_not_forwarded() -> None:
    f = flow(path="/status")
    before = (f.request.host, f.request.port)
    RouteUpstream().request(f)
    assert f.error is not None  # killed
    assert (f.request.host, f.request.port) == before
