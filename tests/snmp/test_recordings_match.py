"""What the agent reads over SNMP equals what each recording holds.

Expectations are computed from the .snmprec file itself (lab.snmprec), both
by the pure parser and by direct lookups of the RFC 3805 objects.
"""

from __future__ import annotations

import re

import pytest

from agent.polling import PolledDevice, poll_device, reading_from
from agent.snmp import oids
from agent.snmp.identity import probe_device
from agent.snmp.parsing import identity_from
from agent.snmp.profiles import profile_for
from agent.snmp.transport import SnmpClient
from agent.snmp.values import Kind, SnmpValue
from lab import snmprec
from lab.catalog import PRINTERS, LabDevice
from lab.snmp import SnmpLab, recording_path
from printgate.domain import SnmpCredential, SupplyState

PUBLIC = [SnmpCredential.v2c("public")]
DEVICE_ID_CANDIDATES = ("1.3.6.1.4.1.11.2.3.9.1.1.7.0", "1.3.6.1.4.1.253.8.51.1.2.1.20.1")


def _rows(data: dict, root: str) -> dict[str, object]:  # type: ignore[type-arg]
    return {oids.suffix(o, root): v.value for o, v in data.items() if oids.suffix(o, root)}


@pytest.mark.parametrize("device", PRINTERS, ids=lambda d: d.name)
async def test_identity_read_over_snmp_equals_the_recording(
    device: LabDevice, snmp_lab: SnmpLab, snmp_client: SnmpClient
) -> None:
    data = snmprec.load(device.recording)
    probe = await probe_device(snmp_client, device.ip, snmp_lab.port, PUBLIC)
    ident = probe.identity
    assert ident.sys_object_id == data[oids.SYS_OBJECT_ID].value
    serial_rows = _rows(data, oids.PRT_GENERAL_SERIAL)
    if serial_rows and serial_rows.get("1"):
        assert ident.serial == serial_rows["1"].decode()  # type: ignore[attr-defined]
    printer_rows = [i for i, v in _rows(data, oids.HR_DEVICE_TYPE).items() if v == oids.HR_DEVICE_PRINTER]
    descr = _rows(data, oids.HR_DEVICE_DESCR)
    device_ids = [data[o].value.decode() for o in DEVICE_ID_CANDIDATES if o in data]  # type: ignore[union-attr]
    mdl = next((m.group(1).strip() for t in device_ids if (m := re.search(r"(?:MDL|MODEL):([^;]+)", t))), None)
    if printer_rows and descr.get(printer_rows[0]):
        assert ident.model == descr[printer_rows[0]].decode().strip()  # type: ignore[attr-defined]
    elif mdl:  # IEEE 1284 device ID (print servers, Xerox): the printer's model, not the NIC's
        assert ident.model is not None and ident.model.endswith(mdl)
        assert ident.model != data[oids.SYS_DESCR].value.decode().strip()  # type: ignore[union-attr]
    else:
        assert ident.model == data[oids.SYS_DESCR].value.decode().strip()  # type: ignore[union-attr]
    if oids.SYS_NAME in data and data[oids.SYS_NAME].value:
        assert ident.sys_name == data[oids.SYS_NAME].value.decode()  # type: ignore[union-attr]
    # the whole identity equals the pure parser applied to the file
    expected, _ = identity_from(data, ip=device.ip)
    assert ident == expected
    assert ident.vendor is not None


@pytest.mark.parametrize("device", PRINTERS, ids=lambda d: d.name)
async def test_counters_and_supplies_read_over_snmp_equal_the_recording(
    device: LabDevice, snmp_lab: SnmpLab, snmp_client: SnmpClient
) -> None:
    data = snmprec.load(device.recording)
    probe = await probe_device(snmp_client, device.ip, snmp_lab.port, PUBLIC)
    reading = await poll_device(
        snmp_client, PolledDevice(device.ip, probe.target, probe.identity.serial, probe.identity.sys_object_id)
    )
    assert reading.errors == ()
    life = _rows(data, oids.PRT_MARKER_LIFE_COUNT)
    got = {c.name: c.value for c in reading.counters}
    assert {f"marker.{i}.life": v for i, v in life.items()} == {
        k: v for k, v in got.items() if k.startswith("marker.")
    }
    for name, oid in profile_for(probe.identity.sys_object_id).counters:
        if oid in data:
            assert got[f"vendor.{name}"] == data[oid].value
    levels = _rows(data, oids.PRT_SUPPLIES_LEVEL)
    caps = _rows(data, oids.PRT_SUPPLIES_MAX_CAPACITY)
    assert len(reading.supplies) == len(set(levels) | set(_rows(data, oids.PRT_SUPPLIES_DESCRIPTION)))
    for s in reading.supplies:
        key = next(k for k in levels if k.split(".")[-1] == str(s.index))
        raw = levels[key]
        if raw in (-1, -2, -3):
            assert s.level is None and s.state is {-1: SupplyState.OTHER, -2: SupplyState.UNKNOWN,
                                                     -3: SupplyState.SOME_REMAINING}[raw]  # type: ignore[index]
        else:
            assert s.level == raw and s.state is SupplyState.KNOWN
        cap = caps.get(key)
        assert s.max_capacity == (cap if isinstance(cap, int) and cap >= 0 else None)
    # and the whole reading equals the pure parser applied to the file
    expected = reading_from(
        data, ip=device.ip, kinds=reading.kinds, serial=reading.serial,
        profile=profile_for(probe.identity.sys_object_id), taken_at=reading.taken_at, reading_id=reading.id,
    )
    assert reading == expected


async def test_alerts_and_printer_status_are_decoded(snmp_lab: SnmpLab, snmp_client: SnmpClient) -> None:
    ip = snmp_lab.address_of("lab-jetdirect_m130nw-alerts")
    data = snmprec.load(recording_path("lab-jetdirect_m130nw-alerts"))
    probe = await probe_device(snmp_client, ip, snmp_lab.port, PUBLIC)
    reading = await poll_device(snmp_client, PolledDevice(ip, probe.target, probe.identity.serial))
    codes = _rows(data, oids.PRT_ALERT_CODE)
    assert len(reading.alerts) == len(codes) == 3
    by_code = {a.code: a for a in reading.alerts}
    assert by_code["coverOpen"].severity == "critical" and by_code["coverOpen"].group == "cover"
    assert by_code["markerTonerAlmostEmpty"].severity == "warning"
    assert by_code["jam"].description == "Paper jam in tray 2"
    assert reading.status is not None
    assert reading.status.status == "other"
    assert reading.status.errors == ("doorOpen", "jammed")
    assert reading.status.device_status == "down"


async def test_malformed_answers_become_recorded_errors_not_crashes(
    snmp_lab: SnmpLab, snmp_client: SnmpClient
) -> None:
    ip = snmp_lab.address_of("lab-sharp-malformed")
    probe = await probe_device(snmp_client, ip, snmp_lab.port, PUBLIC)
    assert probe.printer
    assert probe.identity.sys_object_id is None  # wrong type -> unknown, not guessed
    assert any("sysObjectID" in e for e in probe.errors)
    reading = await poll_device(snmp_client, PolledDevice(ip, probe.target, None))
    text = " | ".join(reading.errors)
    assert "prtMarkerSuppliesLevel.1.1" in text and "prtMarkerLifeCount.1.1" in text
    assert "prtMarkerSuppliesLevel.1.4: invalid value -7" in text
    s1 = next(s for s in reading.supplies if s.index == 1)
    assert s1.level is None and s1.state is SupplyState.UNKNOWN
    s3 = next(s for s in reading.supplies if s.index == 3)
    assert len(s3.description) <= 1024
    assert len(reading.supplies) == 14  # the good rows are all still there


def _mac_of(data: dict, if_index: object) -> str | None:  # type: ignore[type-arg]
    v = data.get(f"{oids.IF_PHYS_ADDRESS}.{if_index}")
    raw = v.value if v is not None else None
    if not isinstance(raw, bytes) or len(raw) != 6 or not any(raw):
        return None
    return ":".join(f"{b:02x}" for b in raw)


def test_mac_is_the_one_of_the_interface_serving_the_address() -> None:
    # every (address -> ifIndex) row in every recording: asked at that address, the
    # agent reports that interface's MAC, not simply the first interface's
    checked = 0
    for device in PRINTERS:
        data = snmprec.load(device.recording)
        for addr, if_index in _rows(data, oids.IP_AD_ENT_IF_INDEX).items():
            want = _mac_of(data, if_index)
            if want is None:
                continue
            ident, _ = identity_from(data, ip=addr)
            assert ident.mac == want, (device.name, addr, if_index)
            checked += 1
    assert checked >= 8
    # the Brother has two interfaces with different MACs: the address decides, not the order
    brother = snmprec.load(recording_path("brother_hl5370dw"))
    key = f"{oids.IP_AD_ENT_IF_INDEX}.10.0.0.146"
    assert identity_from(brother, ip="10.0.0.146")[0].mac == _mac_of(brother, 1)
    moved = {**brother, key: SnmpValue(Kind.INTEGER, 2)}
    assert identity_from(moved, ip="10.0.0.146")[0].mac == _mac_of(brother, 2) != _mac_of(brother, 1)
