"""ServiceWorkerGuard alone: the fetch of a service-worker script is refused, other fetches pass."""

from gateway.proxy.addons.service_workers import ServiceWorkerGuard
from tests.unit.gateway.proxy.addons.flows import decision, flow


def test_a_service_worker_script_fetch_is_refused() -> None:
    f = flow(path="/sw.js", headers={"service-worker": "script"})
    ServiceWorkerGuard().requestheaders(f)
    assert f.response is not None and f.response.status_code >= 400
    found = decision(f)
    assert found is not None and found.rule == "browser.service_worker"


def test_an_ordinary_fetch_passes() -> None:
    f = flow(path="/app.js")
    ServiceWorkerGuard().requestheaders(f)
    assert f.response is None and decision(f) is None
