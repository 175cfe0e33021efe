"""The relay's resource limits (docs/architecture.md, DWA flow step 6; issue 5 "Limits")."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RelayLimits:
    """Bounds on what one agent connection may cost the gateway.

    ``handshake_timeout_s`` covers key exchange plus authentication;
    ``idle_timeout_s`` closes a tunnel that moved no byte for that long;
    ``max_session_s`` caps any connection regardless of its certificate;
    ``max_bytes`` caps the bytes piped through one tunnel (both directions);
    ``max_refusals_per_connection`` closes a connection that keeps asking for
    forbidden things (each refusal is audited up to that bound, not beyond);
    ``keepalive_s``: an idle connection is asked for a keepalive that often and
    dropped after 3 unanswered ones, so a silently lost agent frees its session
    for the agent's reconnect within about 3 times ``keepalive_s``.

    Admission (before any SSH byte is sent): at most ``max_unauthenticated``
    connections in their handshake at once, ``max_unauthenticated_per_source``
    of them from one source address, and ``connections_per_source`` new
    connections per source in each window of ``source_window_s`` seconds
    (those that authenticate as a session's agent are not counted);
    refusals are audited as one record per source and window.
    """

    handshake_timeout_s: float = 10.0
    idle_timeout_s: float = 600.0
    max_session_s: float = 12 * 3600.0
    max_bytes: int = 2 * 1024**3
    max_connections_per_agent: int = 4
    max_unauthenticated: int = 64
    max_unauthenticated_per_source: int = 16
    connections_per_source: int = 20
    source_window_s: float = 10.0
    max_channels_per_tunnel: int = 256
    max_refusals_per_connection: int = 16
    enforce_firewall: bool = True
    keepalive_s: float = 10.0
