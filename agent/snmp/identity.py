"""Who is this device? Credential probing, classification and identity.

``read_identity`` is what other parts call (the tunnel verifies a device
before opening a session); ``probe_device`` is what discovery uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from agent.snmp import oids
from agent.snmp.parsing import classify, identity_from
from agent.snmp.profiles import profile_for
from agent.snmp.transport import SnmpClient, SnmpTarget
from agent.snmp.values import SnmpValue
from printgate.domain import DeviceIdentity, SnmpCredential
from printgate.errors import SnmpError


@dataclass(frozen=True, slots=True)
class DeviceProbe:
    target: SnmpTarget
    identity: DeviceIdentity
    printer: bool
    reason: str
    errors: tuple[str, ...]
    varbinds: dict[str, SnmpValue]


async def find_credential(
    client: SnmpClient, ip: str, port: int, credentials: Sequence[SnmpCredential]
) -> tuple[SnmpTarget, dict[str, SnmpValue]]:
    """Try each credential set in order with a GET of the system group.

    Raises ``SnmpError`` (code ``snmp_timeout`` if nothing answered,
    ``snmp_auth_failed`` if an agent answered but refused every credential).
    """
    if not credentials:
        raise SnmpError("no SNMP credentials configured; add a community or a v3 user", code="snmp_config")
    failures: list[SnmpError] = []
    for cred in credentials:
        target = SnmpTarget(ip, port, cred)
        try:
            values = await client.get(target, oids.SYSTEM_SCALARS)
        except SnmpError as exc:
            if exc.code == "snmp_config":
                raise
            failures.append(exc)
            continue
        if all(v.absent for v in values.values()):
            failures.append(SnmpError(f"{ip}:{port} answered {cred.label} without a system group", code="snmp_failed"))
            continue
        return target, values
    auth = [f for f in failures if f.code == "snmp_auth_failed"]
    if auth:
        raise SnmpError("; ".join(f.message for f in auth), code="snmp_auth_failed")
    raise SnmpError(
        f"no SNMP answer from {ip}:{port} with any of {len(credentials)} credential set(s): "
        + failures[-1].message,
        code=failures[-1].code,
    )


async def probe_device(
    client: SnmpClient, ip: str, port: int, credentials: Sequence[SnmpCredential]
) -> DeviceProbe:
    found, values = await find_credential(client, ip, port, credentials)
    # the device answered: a lost packet now is load, not absence - retry at least once
    target = replace(found, retries=max(1, client.retries))
    varbinds = dict(values)
    failed: list[str] = []
    # later steps failing (buggy firmware) is recorded, not fatal; the Printer-MIB
    # check (one GETNEXT) rides along the first identity GETBULK
    try:
        varbinds.update(await client.walk(
            target, oids.IDENTITY_COLUMNS, max_repetitions=8, max_rows=64, also_next=[oids.PRINTER_MIB],
        ))
    except SnmpError as exc:
        failed.append(f"Printer-MIB check and identity tables: {exc.message}")
    sys_oid = values.get(oids.SYS_OBJECT_ID)
    profile = profile_for(sys_oid.value if sys_oid and isinstance(sys_oid.value, str) else None)
    printer, reason = classify(varbinds)
    if printer:  # vendor serial / device-ID fallbacks: one GET, printers only
        try:
            varbinds.update(await client.get(target, profile.identity_oids))
        except SnmpError as exc:
            failed.append(f"vendor serial/model: {exc.message}")
    if not printer and failed:
        reason = f"{reason} (incomplete answers: {failed[0]})"
    identity, errors = identity_from(varbinds, ip=ip)
    return DeviceProbe(found, identity, printer, reason, tuple(failed + errors), varbinds)


async def read_identity(
    ip: str,
    *,
    port: int,
    credentials: Sequence[SnmpCredential],
    timeout: float = 1.0,
    retries: int = 1,
    client: SnmpClient | None = None,
) -> DeviceIdentity:
    """Read a device's identity (serial, MAC, model, sysObjectID, vendor, ...).

    Raises ``printgate.errors.SnmpError`` when the device does not answer or
    refuses every credential; unknown fields are ``None``.
    """
    if client is not None:
        return (await probe_device(client, ip, port, credentials)).identity
    async with SnmpClient(timeout=timeout, retries=retries) as own:
        return (await probe_device(own, ip, port, credentials)).identity
