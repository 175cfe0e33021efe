"""Domain <-> wire conversions keep identity fields and unknowns intact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from printgate.domain import (
    AgentId,
    Device,
    DeviceId,
    DeviceIdentity,
    DiscoveryResult,
    DiscoveryStatus,
    DwaSession,
    DwaTarget,
    SessionId,
    SiteId,
    UserId,
)
from printgate.wire import agent_pb2 as pb
from printgate.wire import convert, topics

IDENT = DeviceIdentity(serial="CN4711", mac="00:11:22:33:44:55", model="HP LaserJet", vendor="HP",
                       tls_fingerprint="ab" * 32)


def test_discovered_printer_round_trips_with_unknowns_as_none() -> None:
    msg = convert.discovered_to_wire(DiscoveryResult("10.0.0.7", DiscoveryStatus.PRINTER, identity=IDENT),
                                     ews_port=443, ews_scheme="https")
    wire = pb.DiscoveredDevice.FromString(msg.SerializeToString())
    assert convert.is_printer(wire) and wire.ews_port == 443
    back = convert.identity_from_wire(wire)
    assert back == IDENT and back.location is None


def test_excluded_device_carries_its_reason() -> None:
    msg = convert.discovered_to_wire(DiscoveryResult("10.0.0.8", DiscoveryStatus.EXCLUDED,
                                                     reason="no Printer-MIB (Windows print queue)"))
    assert not convert.is_printer(msg) and "Printer-MIB" in msg.excluded_reason


def test_open_tunnel_command_names_target_identity_and_expiry() -> None:
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    session = DwaSession(SessionId("s1"), UserId("u"), DeviceId("d"), AgentId("a"),
                         DwaTarget("10.0.0.7", 443, "https"), now, now + timedelta(minutes=30))
    device = Device(DeviceId("d"), SiteId("site"), AgentId("a"), "10.0.0.7", IDENT)
    cmd = convert.open_tunnel(session, device, relay_host="relay", relay_port=22,
                              relay_host_key_fingerprint="SHA256:x", private_key="KEY", certificate="CERT")
    assert cmd.target_scheme == "https" and cmd.expires_at_ms == convert.ms(now + timedelta(minutes=30))
    assert convert.expected_identity(cmd).serial == "CN4711"
    assert convert.expected_identity(cmd).tls_fingerprint == "ab" * 32


def test_topics_refuse_wildcards_in_agent_ids() -> None:
    import pytest

    assert topics.agent_of(topics.command_topic("agt-1")) == "agt-1"
    assert topics.kind_of(topics.presence_topic("agt-1")) == "presence"
    assert topics.agent_of("printgate/v1/agents/x/cmd/extra") is None
    for bad in ("+", "#", "a/b", ""):
        with pytest.raises(ValueError):
            topics.command_topic(bad)
