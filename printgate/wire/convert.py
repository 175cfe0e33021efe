"""Pure conversions between domain types and wire messages (both ends use them)."""

from __future__ import annotations

from datetime import datetime

from printgate.domain import (
    Device,
    DeviceIdentity,
    DiscoveryResult,
    DiscoveryStatus,
    DwaSession,
)
from printgate.wire import agent_pb2 as pb

_IDENTITY_FIELDS = ("serial", "mac", "model", "sys_object_id", "vendor", "sys_name", "location",
                    "tls_fingerprint")


def discovered_to_wire(result: DiscoveryResult, *, ews_port: int = 80, ews_scheme: str = "http") -> pb.DiscoveredDevice:
    """A discovery result as sent in ``UploadInventory`` (printers and exclusions only)."""
    ident = result.identity or DeviceIdentity()
    status = (pb.DEVICE_STATUS_PRINTER if result.status is DiscoveryStatus.PRINTER
              else pb.DEVICE_STATUS_EXCLUDED)
    msg = pb.DiscoveredDevice(ip=result.ip, ews_port=ews_port, ews_scheme=ews_scheme, status=status,
                              excluded_reason="" if status == pb.DEVICE_STATUS_PRINTER else result.reason)
    for name in _IDENTITY_FIELDS:
        setattr(msg, name, getattr(ident, name) or "")
    return msg


def identity_from_wire(msg: pb.DiscoveredDevice) -> DeviceIdentity:
    """The identity fields of a discovered device; empty strings become ``None`` (unknown)."""
    return DeviceIdentity(**{name: getattr(msg, name) or None for name in _IDENTITY_FIELDS})


def is_printer(msg: pb.DiscoveredDevice) -> bool:
    return msg.status == pb.DEVICE_STATUS_PRINTER


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def open_tunnel(session: DwaSession, device: Device, *, relay_host: str, relay_port: int,
                relay_host_key_fingerprint: str, private_key: str, certificate: str) -> pb.OpenTunnel:
    """The ``OpenTunnel`` command for a DWA session (credential texts are OpenSSH format)."""
    ident = device.identity
    return pb.OpenTunnel(
        session_id=session.id, target_ip=session.target.ip, target_port=session.target.port,
        target_scheme=session.target.scheme,
        expected_identity=pb.DeviceIdentity(serial=ident.serial or "", mac=ident.mac or "",
                                            model=ident.model or "",
                                            sys_object_id=ident.sys_object_id or "",
                                            tls_fingerprint=ident.tls_fingerprint or ""),
        relay_host=relay_host, relay_port=relay_port,
        relay_host_key_fingerprint=relay_host_key_fingerprint,
        credential_private_key=private_key, credential_certificate=certificate,
        expires_at_ms=ms(session.expires_at),
    )


def close_tunnel(session_id: str, reason: str) -> pb.CloseTunnel:
    return pb.CloseTunnel(session_id=session_id, reason=reason)


def expected_identity(cmd: pb.OpenTunnel) -> DeviceIdentity:
    """What the agent must find at the target before it opens the tunnel."""
    e = cmd.expected_identity
    return DeviceIdentity(serial=e.serial or None, mac=e.mac or None, model=e.model or None,
                          sys_object_id=e.sys_object_id or None,
                          tls_fingerprint=e.tls_fingerprint or None)
