"""Pure conversions between domain types and wire messages (both ends use them)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from printgate.domain import (
    CounterValue,
    Device,
    DeviceIdentity,
    DiscoveryResult,
    DiscoveryStatus,
    DwaSession,
    PrinterAlert,
    PrinterStatus,
    Reading,
    ReadingKind,
    SupplyLevel,
    SupplyState,
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


# ---- readings (ReadingsBatch version 2) ------------------------------------------------------

READINGS_VERSION = 2  # what this code's agents send; the cloud still ingests version 1 (JSON)


def _us(at: datetime) -> int:
    delta = at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH = _EPOCH  # taken_at_us counts from here


def micros(at: datetime) -> int:
    """``at`` as ``taken_at_us`` (exact: integer arithmetic, no float)."""
    return _us(at)


def reading_to_wire(r: Reading) -> pb.Reading:
    """A reading as the agent sends it (the exact values: counters absolute, times in µs)."""
    msg = pb.Reading(
        id=r.id, ip=r.ip, taken_at_us=_us(r.taken_at), kinds=[str(k) for k in r.kinds],
        counters=[pb.Counter(name=c.name, value=c.value, unit=c.unit) for c in r.counters],
        supplies=[pb.Supply(index=s.index, description=s.description, type=s.type, colour=s.colour,
                            unit=s.unit, max_capacity=s.max_capacity, level=s.level, state=str(s.state))
                  for s in r.supplies],
        alerts=[pb.Alert(index=a.index, severity=a.severity, group=a.group, code=a.code,
                         description=a.description, training_level=a.training_level)
                for a in r.alerts],
        errors=list(r.errors),
    )
    if r.serial is not None:
        msg.serial = r.serial
    if r.status is not None:
        msg.status.CopyFrom(pb.PrinterStatus(status=r.status.status, errors=list(r.status.errors),
                                             device_status=r.status.device_status))
    return msg


def readings_batch(site_id: str, batch_id: str, readings: Sequence[Reading]) -> pb.ReadingsBatch:
    return pb.ReadingsBatch(site_id=site_id, batch_id=batch_id, version=READINGS_VERSION,
                            readings=[reading_to_wire(r) for r in readings])


def _opt(msg: Any, name: str) -> Any:
    return getattr(msg, name) if msg.HasField(name) else None


def reading_from_wire(msg: pb.Reading) -> Reading:
    """The domain reading of ``msg``; raises ``ValueError`` naming what is wrong (unknown kind,
    supply state, a time out of range). Range and size checks are the receiver's (``fleet``)."""
    try:
        taken_at = _EPOCH + timedelta(microseconds=msg.taken_at_us)
    except OverflowError:
        raise ValueError(f"taken_at_us {msg.taken_at_us} is out of range") from None
    status = None
    if msg.HasField("status"):
        st = msg.status
        status = PrinterStatus(_opt(st, "status"), tuple(st.errors), _opt(st, "device_status"))
    return Reading(
        id=msg.id, ip=msg.ip, taken_at=taken_at, kinds=tuple(ReadingKind(k) for k in msg.kinds),
        serial=_opt(msg, "serial"),
        counters=tuple(CounterValue(c.name, c.value, c.unit) for c in msg.counters),
        supplies=tuple(SupplyLevel(s.index, s.description, s.type, _opt(s, "colour"), s.unit,
                                   _opt(s, "max_capacity"), _opt(s, "level"), SupplyState(s.state))
                       for s in msg.supplies),
        alerts=tuple(PrinterAlert(a.index, a.severity, a.group, a.code, a.description,
                                  _opt(a, "training_level")) for a in msg.alerts),
        status=status, errors=tuple(msg.errors),
    )
