"""How long and how many connections one browser (or attacker) may hold on the proxy."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    # a new connection must complete its first request's headers in this time (slowloris)
    header_timeout_s: float = 10.0
    # a keep-alive connection may wait this long for its next request
    idle_timeout_s: float = 60.0
    # from a request's headers to its answer (slow bodies, stalled devices)
    request_timeout_s: float = 120.0
    # open connections from one source address (browsers open about 6 per host)
    max_connections_per_source: int = 256
    # body bytes dropped after an answer sent on the headers, before the connection is closed
    linger_bytes: int = 256 * 1024
    # a source that sends this many bodies refused on their headers (no session, unknown host)
    # within refusal_window_s is refused at connect for refusal_cooldown_s
    max_refused_bodies_per_source: int = 30
    refusal_window_s: float = 10.0
    refusal_cooldown_s: float = 30.0
    # kernel receive buffer of each browser connection: what a client can push before the proxy
    # reads (browsers send small requests; a refused upload then costs little to throw away)
    receive_buffer_bytes: int = 64 * 1024
    # how often deadlines are checked
    check_interval_s: float = 1.0
