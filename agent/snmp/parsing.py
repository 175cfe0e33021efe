"""What the answers mean: pure functions from varbinds to domain values.

Every function takes ``Varbinds`` (oid -> SnmpValue, whatever was fetched)
and never raises on bad data: a wrong-typed or malformed value becomes an
error string in the returned list, and the value is reported as unknown.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

from agent.snmp import codes, oids
from agent.snmp.profiles import DEVICE_ID_OIDS, VendorProfile, profile_for
from agent.snmp.supply_text import colour_in_name, supply_description
from agent.snmp.values import SnmpValue, Varbinds, WrongType
from printgate.domain import (
    CounterValue,
    DeviceIdentity,
    PrinterAlert,
    PrinterStatus,
    SupplyLevel,
    SupplyState,
)

Errors = list[str]

SPECIAL_LEVELS = {-1: SupplyState.OTHER, -2: SupplyState.UNKNOWN, -3: SupplyState.SOME_REMAINING}
MAX_ROWS = 256  # tables longer than this are cut (and reported)
MAX_COUNT = (1 << 63) - 1  # the wire's int64 (and the cloud's BIGINT): a Counter64 above it is refused
MAX_INDEX = (1 << 31) - 1  # the wire's int32 supply / alert index
OUT_OF_RANGE = "out of range"  # in the error text of a value refused for its size (the poller logs these)


def column(vb: Varbinds, root: str) -> dict[str, SnmpValue]:
    """Rows of one column: index suffix -> value (absent values dropped)."""
    out: dict[str, SnmpValue] = {}
    for oid, value in vb.items():
        idx = oids.suffix(oid, root)
        if idx and not value.absent:
            out[idx] = value
    return out


def _safe[T](errors: Errors, what: str, fn: Callable[[], T]) -> T | None:
    try:
        return fn()
    except (WrongType, ValueError, UnicodeError) as exc:
        errors.append(f"{what}: {exc}")
        return None


def _scalar(vb: Varbinds, oid: str) -> SnmpValue | None:
    v = vb.get(oid)
    return None if v is None or v.absent else v


def _text_or_none(errors: Errors, what: str, v: SnmpValue | None) -> str | None:
    if v is None:
        return None
    text = _safe(errors, what, v.as_text)
    return text or None


def printer_mib_answers(vb: Varbinds) -> bool:
    return any(oids.is_under(o, oids.PRINTER_MIB) and not v.absent for o, v in vb.items())


def classify(vb: Varbinds) -> tuple[bool, str]:
    """RFC 3805: a printer answers Printer-MIB objects; returns (printer?, reason)."""
    if printer_mib_answers(vb):
        return True, "answers Printer-MIB (RFC 3805) objects"
    hr_printer = any(
        v.kind.value == "oid" and v.value == oids.HR_DEVICE_PRINTER
        for v in column(vb, oids.HR_DEVICE_TYPE).values()
    )
    if hr_printer:
        return False, (
            "not a printer: lists hrDevicePrinter entries (e.g. print queues) "
            "but answers no Printer-MIB (1.3.6.1.2.1.43) objects"
        )
    return False, "not a printer: answers no Printer-MIB (1.3.6.1.2.1.43) objects"


def _first_row(rows: dict[str, SnmpValue]) -> SnmpValue | None:
    if not rows:
        return None
    return rows[min(rows, key=lambda k: oids.oid_tuple(k) if _is_index(k) else (1 << 32,))]


def _is_index(k: str) -> bool:
    return all(p.isdigit() for p in k.split("."))


def _mac(errors: Errors, vb: Varbinds, ip: str | None) -> str | None:
    phys = column(vb, oids.IF_PHYS_ADDRESS)
    types = column(vb, oids.IF_TYPE)
    order: list[str] = []
    if ip is not None:
        v = _scalar(vb, f"{oids.IP_AD_ENT_IF_INDEX}.{ip}")
        if v is not None:
            if_index = _safe(errors, "ipAdEntIfIndex", v.as_int)
            if if_index is not None:
                order.append(str(if_index))
    for idx in sorted((k for k in phys if _is_index(k)), key=oids.oid_tuple):
        t = types.get(idx)
        if t is not None and _safe([], "", t.as_int) == oids.IF_TYPE_SOFTWARE_LOOPBACK:
            continue
        order.append(idx)
    for idx in order:
        v = phys.get(idx)
        if v is None:
            continue
        raw = _safe(errors, f"ifPhysAddress.{idx}", v.as_bytes)
        if raw is not None and len(raw) == 6 and any(raw):
            return ":".join(f"{b:02x}" for b in raw)
    return None


def model_from_device_id(device_id: str | None, vendor: str = "") -> str | None:
    """The model in an IEEE 1284 device ID ("MFG:Xerox;MDL:AltaLink C8045;..."), vendor-prefixed."""
    if not device_id:
        return None
    fields: dict[str, str] = {}
    for part in device_id.split(";"):
        key, sep, value = part.partition(":")
        if sep and value.strip():
            fields.setdefault(key.strip().upper(), value.strip())
    model = fields.get("MDL") or fields.get("MODEL")
    if not model:
        return None
    if vendor and not model.lower().startswith(vendor.lower()):
        model = f"{vendor} {model}"
    return model[:200]


def identity_from(
    vb: Varbinds, *, ip: str | None = None, profiles: Iterable[VendorProfile] | None = None
) -> tuple[DeviceIdentity, Errors]:
    errors: Errors = []
    sys_oid_v = _scalar(vb, oids.SYS_OBJECT_ID)
    sys_oid = _safe(errors, "sysObjectID", sys_oid_v.as_oid) if sys_oid_v else None
    profile = profile_for(sys_oid, None if profiles is None else tuple(profiles))
    sys_descr = _text_or_none(errors, "sysDescr", _scalar(vb, oids.SYS_DESCR))

    serial = _text_or_none(errors, "prtGeneralSerialNumber", _first_row(column(vb, oids.PRT_GENERAL_SERIAL)))
    for o in profile.serial_oids:
        if serial:
            break
        serial = _text_or_none(errors, f"vendor serial {o}", _scalar(vb, o))
    if not serial and profile.serial_in_sys_descr is not None and sys_descr:
        m = profile.serial_in_sys_descr.search(sys_descr)
        serial = m.group(1).strip() if m and m.group(1).strip() else None

    model: str | None = None
    types = column(vb, oids.HR_DEVICE_TYPE)
    descrs = column(vb, oids.HR_DEVICE_DESCR)
    for idx in sorted((k for k in types if _is_index(k)), key=oids.oid_tuple):
        if types[idx].kind.value == "oid" and types[idx].value == oids.HR_DEVICE_PRINTER:
            model = _text_or_none(errors, f"hrDeviceDescr.{idx}", descrs.get(idx))
            if model:
                break
    if not model:
        for o in (*DEVICE_ID_OIDS, *profile.device_id_oids):
            model = model_from_device_id(_text_or_none(errors, f"device ID {o}", _scalar(vb, o)), profile.vendor)
            if model:
                break
    model = model or sys_descr

    identity = DeviceIdentity(
        serial=serial or None,
        mac=_mac(errors, vb, ip),
        model=model,
        sys_object_id=sys_oid,
        vendor=profile.vendor or None,
        sys_name=_text_or_none(errors, "sysName", _scalar(vb, oids.SYS_NAME)),
        location=_text_or_none(errors, "sysLocation", _scalar(vb, oids.SYS_LOCATION)),
    )
    return identity, errors


def counters_from(vb: Varbinds, profile: VendorProfile | None = None) -> tuple[list[CounterValue], Errors]:
    errors: Errors = []
    out: list[CounterValue] = []
    units = column(vb, oids.PRT_MARKER_COUNTER_UNIT)
    rows = column(vb, oids.PRT_MARKER_LIFE_COUNT)
    for idx in sorted((k for k in rows if _is_index(k)), key=oids.oid_tuple)[:MAX_ROWS]:
        value = _safe(errors, f"prtMarkerLifeCount.{idx}", rows[idx].as_int)
        if value is None:
            continue
        if value < 0:
            errors.append(f"prtMarkerLifeCount.{idx}: negative count {value}")
            continue
        if value > MAX_COUNT:
            errors.append(f"prtMarkerLifeCount.{idx}: count {value} {OUT_OF_RANGE} (at most 2^63-1); not sent")
            continue
        unit_v = units.get(idx)
        unit_n = _safe(errors, f"prtMarkerCounterUnit.{idx}", unit_v.as_int) if unit_v else None
        unit = codes.name_of(codes.MARKER_COUNTER_UNITS, unit_n) if unit_n is not None else "impressions"
        out.append(CounterValue(f"marker.{idx}.life", value, unit))
    for name, oid in profile.counters if profile else ():
        v = _scalar(vb, oid)
        if v is None:
            continue
        value = _safe(errors, f"vendor counter {name}", v.as_int)
        if value is not None and value > MAX_COUNT:
            errors.append(f"vendor counter {name}: count {value} {OUT_OF_RANGE} (at most 2^63-1); not sent")
        elif value is not None and value >= 0:
            out.append(CounterValue(f"vendor.{name}", value))
    return out, errors


def _level(errors: Errors, what: str, v: SnmpValue | None) -> tuple[int | None, SupplyState]:
    if v is None:
        return None, SupplyState.UNKNOWN
    n = _safe(errors, what, v.as_int)
    if n is None:
        return None, SupplyState.UNKNOWN
    if n in SPECIAL_LEVELS:
        return None, SPECIAL_LEVELS[n]
    if n < 0:
        errors.append(f"{what}: invalid value {n}")
        return None, SupplyState.UNKNOWN
    if n > MAX_INDEX:  # RFC 3805 levels are Integer32: anything larger is junk the wire cannot carry
        errors.append(f"{what}: value {n} {OUT_OF_RANGE} (at most 2^31-1)")
        return None, SupplyState.UNKNOWN
    return n, SupplyState.KNOWN


def supplies_from(vb: Varbinds) -> tuple[list[SupplyLevel], Errors]:
    errors: Errors = []
    cols = {root: column(vb, root) for root in oids.SUPPLY_COLUMNS}
    colorants = cols[oids.PRT_COLORANT_VALUE]
    indexes = set(cols[oids.PRT_SUPPLIES_DESCRIPTION]) | set(cols[oids.PRT_SUPPLIES_LEVEL])
    out: list[SupplyLevel] = []
    for idx in sorted((k for k in indexes if _is_index(k)), key=oids.oid_tuple)[:MAX_ROWS]:
        if int(idx.split(".")[-1]) > MAX_INDEX:
            errors.append(f"prtMarkerSupplies row {idx}: index {OUT_OF_RANGE} (at most 2^31-1); not sent")
            continue

        def get(root: str, _idx: str = idx) -> SnmpValue | None:
            return cols[root].get(_idx)

        desc_v = get(oids.PRT_SUPPLIES_DESCRIPTION)
        desc_raw = _safe(errors, f"prtMarkerSuppliesDescription.{idx}", desc_v.as_bytes) if desc_v else None
        desc = supply_description(desc_raw) if desc_raw is not None else None
        type_v = get(oids.PRT_SUPPLIES_TYPE)
        type_n = _safe(errors, f"prtMarkerSuppliesType.{idx}", type_v.as_int) if type_v else None
        unit_v = get(oids.PRT_SUPPLIES_UNIT)
        unit_n = _safe(errors, f"prtMarkerSuppliesSupplyUnit.{idx}", unit_v.as_int) if unit_v else None
        max_cap, _ = _level(errors, f"prtMarkerSuppliesMaxCapacity.{idx}", get(oids.PRT_SUPPLIES_MAX_CAPACITY))
        level, state = _level(errors, f"prtMarkerSuppliesLevel.{idx}", get(oids.PRT_SUPPLIES_LEVEL))
        colour: str | None = None
        col_v = get(oids.PRT_SUPPLIES_COLORANT_INDEX)
        col_n = _safe(errors, f"prtMarkerSuppliesColorantIndex.{idx}", col_v.as_int) if col_v else None
        if col_n:
            device = idx.split(".")[0]
            colour = _text_or_none(errors, f"prtMarkerColorantValue.{device}.{col_n}", colorants.get(f"{device}.{col_n}"))
        if colour is None and col_n != 0 and desc:  # no colorant row: the colour word in the name, if any
            colour = colour_in_name(desc)
        out.append(
            SupplyLevel(
                index=int(idx.split(".")[-1]),
                description=desc or "",
                type=codes.name_of(codes.SUPPLY_TYPES, type_n) if type_n is not None else "unknown",
                colour=colour,
                unit=codes.name_of(codes.SUPPLY_UNITS, unit_n) if unit_n is not None else "unknown",
                max_capacity=max_cap,
                level=level,
                state=state,
            )
        )
    return out, errors


def alerts_from(vb: Varbinds) -> tuple[list[PrinterAlert], Errors]:
    errors: Errors = []
    cols = {root: column(vb, root) for root in (
        oids.PRT_ALERT_SEVERITY, oids.PRT_ALERT_TRAINING, oids.PRT_ALERT_GROUP,
        oids.PRT_ALERT_CODE, oids.PRT_ALERT_DESCRIPTION,
    )}
    out: list[PrinterAlert] = []
    indexes = set(cols[oids.PRT_ALERT_SEVERITY]) | set(cols[oids.PRT_ALERT_CODE])
    for idx in sorted((k for k in indexes if _is_index(k)), key=oids.oid_tuple)[:MAX_ROWS]:
        if int(idx.split(".")[-1]) > MAX_INDEX:
            errors.append(f"prtAlertTable row {idx}: index {OUT_OF_RANGE} (at most 2^31-1); not sent")
            continue

        def num(root: str, table: dict[int, str], what: str, _idx: str = idx) -> str | None:
            v = cols[root].get(_idx)
            n = _safe(errors, f"{what}.{_idx}", v.as_int) if v else None
            return None if n is None else codes.name_of(table, n)

        out.append(
            PrinterAlert(
                index=int(idx.split(".")[-1]),
                severity=num(oids.PRT_ALERT_SEVERITY, codes.ALERT_SEVERITY, "prtAlertSeverityLevel") or "unknown",
                group=num(oids.PRT_ALERT_GROUP, codes.ALERT_GROUP, "prtAlertGroup") or "unknown",
                code=num(oids.PRT_ALERT_CODE, codes.ALERT_CODE, "prtAlertCode") or "unknown",
                description=_text_or_none(errors, f"prtAlertDescription.{idx}", cols[oids.PRT_ALERT_DESCRIPTION].get(idx)) or "",
                training_level=num(oids.PRT_ALERT_TRAINING, codes.ALERT_TRAINING, "prtAlertTrainingLevel"),
            )
        )
    return out, errors


def status_from(vb: Varbinds) -> tuple[PrinterStatus | None, Errors]:
    """hrPrinterStatus / hrPrinterDetectedErrorState / hrDeviceStatus of the printer row."""
    errors: Errors = []
    types = column(vb, oids.HR_DEVICE_TYPE)
    printer_rows = [k for k, v in types.items() if v.kind.value == "oid" and v.value == oids.HR_DEVICE_PRINTER]
    statuses = column(vb, oids.HR_PRINTER_STATUS)
    rows = sorted(printer_rows or list(statuses), key=lambda k: oids.oid_tuple(k) if _is_index(k) else (1 << 32,))
    if not rows:
        return None, errors
    idx = rows[0]
    grouped: dict[str, str | None] = defaultdict(lambda: None)
    sv = statuses.get(idx)
    n = _safe(errors, f"hrPrinterStatus.{idx}", sv.as_int) if sv else None
    grouped["status"] = None if n is None else codes.name_of(codes.HR_PRINTER_STATUS, n)
    dv = column(vb, oids.HR_DEVICE_STATUS).get(idx)
    n = _safe(errors, f"hrDeviceStatus.{idx}", dv.as_int) if dv else None
    grouped["device"] = None if n is None else codes.name_of(codes.HR_DEVICE_STATUS, n)
    ev = column(vb, oids.HR_PRINTER_DETECTED_ERROR_STATE).get(idx)
    raw = _safe(errors, f"hrPrinterDetectedErrorState.{idx}", ev.as_bytes) if ev else None
    bits = codes.decode_error_bits(raw[:8]) if raw is not None else ()
    if grouped["status"] is None and grouped["device"] is None and not bits:
        return None, errors
    return PrinterStatus(grouped["status"], bits, grouped["device"]), errors
