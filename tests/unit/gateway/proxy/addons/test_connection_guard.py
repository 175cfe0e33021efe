"""ConnectionGuard alone, on a hand-driven clock: per-source cap and header/idle deadlines."""

from mitmproxy.test import tflow

from gateway.proxy.addons.connection_guard import ConnectionGuard
from gateway.proxy.connection_limits import ConnectionLimits


class Closer:
    def __init__(self) -> None:
        self.closed: list[str] = []

    def close_now(self, client_id: str) -> None:
        self.closed.append(client_id)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _client(source: str = "127.0.0.9"):  # type: ignore[no-untyped-def]
    client = tflow.tclient_conn()
    client.peername = (source, 50000)
    return client


def test_connections_over_the_per_source_cap_are_refused() -> None:
    guard = ConnectionGuard(ConnectionLimits(max_connections_per_source=2), Closer(), Clock())
    clients = [_client() for _ in range(3)]
    for c in clients:
        guard.client_connected(c)
    assert guard.refused == 1 and clients[2].error and guard.open_connections == 2
    guard.client_connected(_client("127.0.0.10"))  # another source is not affected
    assert guard.open_connections == 3


def test_a_connection_that_never_sends_its_headers_is_closed_at_the_deadline() -> None:
    closer, clock = Closer(), Clock()
    guard = ConnectionGuard(ConnectionLimits(header_timeout_s=10), closer, clock)
    slow = _client()
    guard.client_connected(slow)
    clock.now += 9
    guard.sweep()
    assert closer.closed == []
    clock.now += 2
    guard.sweep()
    guard.sweep()  # counted once
    assert closer.closed == [slow.id] and guard.timed_out == 1
