"""What the broker sends and installs for one session: the agent's commands and the proxy route."""

from __future__ import annotations

from gateway.proxy.routes import SessionRoute
from gateway.relay import Relay, SessionCredential
from printgate.domain import Customer, Device, DwaSession
from printgate.wire import agent_pb2 as pb


class DwaWiring:
    """Builds OpenTunnel/CloseTunnel payloads and proxy routes for the broker."""

    def __init__(self, *, relay_public_host: str, dwa_domain: str, idle_timeout_s: int) -> None:
        self._relay_host = relay_public_host
        self._domain = dwa_domain.strip(".").lower()
        self._idle = idle_timeout_s

    def open_command(
        self, session: DwaSession, device: Device, credential: SessionCredential, relay: Relay
    ) -> pb.OpenTunnel:
        ident = device.identity
        return pb.OpenTunnel(
            session_id=session.id,
            target_ip=session.target.ip, target_port=session.target.port,
            target_scheme=session.target.scheme,
            expected_identity=pb.DeviceIdentity(
                serial=ident.serial or "", mac=ident.mac or "", model=ident.model or "",
                sys_object_id=ident.sys_object_id or "", tls_fingerprint=ident.tls_fingerprint or "",
            ),
            relay_host=self._relay_host, relay_port=relay.port,
            relay_host_key_fingerprint=relay.host_key_fingerprint,
            credential_private_key=credential.private_key,
            credential_certificate=credential.certificate,
            expires_at_ms=int(session.expires_at.timestamp() * 1000),
        )

    @staticmethod
    def close_command(session_id: str, reason: str) -> pb.CloseTunnel:
        return pb.CloseTunnel(session_id=session_id, reason=reason)

    def session_host(self, session_id: str) -> str:
        return f"s-{session_id}.{self._domain}"

    def route(
        self, session: DwaSession, device: Device, customer: Customer, upstream: tuple[str, int]
    ) -> SessionRoute:
        return SessionRoute(
            session_id=session.id,
            host=self.session_host(session.id),
            upstream_host=upstream[0], upstream_port=upstream[1],
            device_origin=session.target.origin,
            device_scheme=session.target.scheme,
            pinned_fingerprint=device.identity.tls_fingerprint,
            expires_at=session.expires_at,
            idle_timeout_s=self._idle,
            device_label=device.name or device.identity.describe(),
            customer_name=customer.name,
        )
