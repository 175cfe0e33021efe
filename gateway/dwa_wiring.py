"""What the broker sends and installs for one session: the agent's commands and the proxy route."""

from __future__ import annotations

from collections.abc import Callable

from gateway.attribution import Attribution
from gateway.proxy.routes import SessionRoute
from gateway.relay import Relay, SessionCredential
from printgate.domain import Customer, Device, DwaSession
from printgate.wire import agent_pb2 as pb
from printgate.wire import convert


class DwaWiring:
    """Builds OpenTunnel/CloseTunnel payloads and proxy routes for the broker."""

    def __init__(
        self, *, relay_public_host: str, session_host: Callable[[str], str], idle_timeout_s: int
    ) -> None:
        self._relay_host = relay_public_host
        self._session_host = session_host  # the proxy's naming of session hosts
        self._idle = idle_timeout_s

    def open_command(
        self, session: DwaSession, device: Device, credential: SessionCredential, relay: Relay
    ) -> pb.OpenTunnel:
        return convert.open_tunnel(
            session, device, relay_host=self._relay_host, relay_port=relay.port,
            relay_host_key_fingerprint=relay.host_key_fingerprint,
            private_key=credential.private_key, certificate=credential.certificate,
        )

    close_command = staticmethod(convert.close_tunnel)

    def route(
        self, session: DwaSession, device: Device, customer: Customer, upstream: tuple[str, int],
        attribution: Attribution,
    ) -> SessionRoute:
        return SessionRoute(
            session_id=session.id,
            host=self._session_host(session.id),
            upstream_host=upstream[0], upstream_port=upstream[1],
            device_origin=session.target.origin,
            device_scheme=session.target.scheme,
            pinned_fingerprint=device.identity.tls_fingerprint,
            expires_at=session.expires_at,
            idle_timeout_s=self._idle,
            device_label=device.name or device.identity.describe(),
            customer_name=customer.name,
            vendor=device.identity.vendor or "",
            dealer_id=attribution.dealer_id, customer_id=attribution.customer_id,
            site_id=attribution.site_id, device_id=attribution.device_id, user_id=attribution.user_id,
        )
