"""Who is this device? Credential probing, classification and identity.

``read_identity`` is what other parts call (the tunnel verifies a device
before opening a session); ``probe_device`` is what discovery uses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace

from agent.errors import SNMP_AUTH_FAILED, SNMP_CONFIG, SNMP_ERROR_STATUS
from agent.snmp import oids
from agent.snmp.parsing import classify, identity_from, printer_mib_answers
from agent.snmp.profiles import profile_for
from agent.snmp.transport import SnmpClient, SnmpTarget
from agent.snmp.values import SnmpValue
from printgate.domain import DeviceIdentity, SnmpCredential
from printgate.errors import SNMP_FAILED, SnmpError


@dataclass(frozen=True, slots=True)
class DeviceProbe:
    target: SnmpTarget
    identity: DeviceIdentity
    printer: bool
    reason: str
    errors: tuple[str, ...]
    varbinds: dict[str, SnmpValue]


async def find_credential(
    client: SnmpClient, ip: str, port: int, credentials: Sequence[SnmpCredential],
    failures: list[str] | None = None,
) -> tuple[SnmpTarget, dict[str, SnmpValue]]:
    """Try each credential set in order with a GET of the system group.

    An agent that answers the GET with an error status (v2c ``genErr``, ...)
    accepted the credential: the system objects are then asked one by one
    and what still fails goes to ``failures``. Raises ``SnmpError`` (code
    ``snmp_timeout`` if nothing answered, ``snmp_auth_failed`` if an agent
    answered but refused every credential).
    """
    if not credentials:
        raise SnmpError("no SNMP credentials configured; add a community or a v3 user", code=SNMP_CONFIG)
    errors: list[SnmpError] = []
    for cred in credentials:
        target = SnmpTarget(ip, port, cred)
        try:
            values = await client.get(target, oids.SYSTEM_SCALARS)
        except SnmpError as exc:
            if exc.code == SNMP_CONFIG:
                raise
            if exc.code != SNMP_ERROR_STATUS:
                errors.append(exc)
                continue
            lost: list[str] = [f"system group GET: {exc.message}; asked object by object"]
            values = await client.get(replace(target, retries=max(1, client.retries)), oids.SYSTEM_SCALARS,
                                      failures=lost)
            if failures is not None:
                failures.extend(lost)
        if all(v.absent for v in values.values()):
            errors.append(SnmpError(f"{ip}:{port} answered {cred.label} without any system group object "
                                    "(sysDescr, sysObjectID, sysName, sysLocation)", code=SNMP_FAILED))
            continue
        return target, values
    auth = [f for f in errors if f.code == SNMP_AUTH_FAILED]
    if auth:
        raise SnmpError("; ".join(f.message for f in auth), code=SNMP_AUTH_FAILED)
    raise SnmpError(
        f"no SNMP answer from {ip}:{port} with any of {len(credentials)} credential set(s): "
        + errors[-1].message,
        code=errors[-1].code,
    )


# Printer-MIB subtrees asked one by one when GETNEXT of the MIB's root fails:
# prtGeneral, prtMarker, prtMarkerSupplies, prtAlert
PRINTER_MIB_FALLBACKS = ("1.3.6.1.2.1.43.5", "1.3.6.1.2.1.43.10", "1.3.6.1.2.1.43.11", "1.3.6.1.2.1.43.18")


async def printer_mib_check(
    client: SnmpClient, target: SnmpTarget, answered: dict[str, SnmpValue], failures: list[str]
) -> tuple[bool, str]:
    """Does the device answer Printer-MIB objects? (printer?, reason)

    Only Printer-MIB answers decide (``classify``); ``answered`` holds what
    the device answered so far, with the GETNEXT of the Printer-MIB root
    that rode along the identity walk. When that request failed, the MIB's
    main tables are asked one by one before deciding.
    """
    if printer_mib_answers(answered):
        return True, "answers Printer-MIB (RFC 3805) objects"
    root_failed = [f for f in failures if f.startswith(f"GETNEXT {oids.PRINTER_MIB}:")]
    if not root_failed:
        return classify(answered)
    async def ask(subtree: str) -> dict[str, SnmpValue] | str:
        try:
            return await client.next(target, [subtree])
        except SnmpError as exc:
            return f"GETNEXT {subtree}: {exc.message}"

    # at once: a device that stopped answering costs one timeout, not one per table
    answers = await asyncio.gather(*(ask(subtree) for subtree in PRINTER_MIB_FALLBACKS))
    tried = [a for a in answers if isinstance(a, str)]
    for subtree, got in zip(PRINTER_MIB_FALLBACKS, answers, strict=True):
        if not isinstance(got, str) and printer_mib_answers(got):
            answered.update(got)
            return True, f"answers Printer-MIB (RFC 3805) objects under {subtree}"
    failures.extend(tried)
    how = "; ".join([root_failed[0], *tried])
    if len(tried) == len(PRINTER_MIB_FALLBACKS):
        return False, f"not classified: every Printer-MIB request failed ({how})"
    return False, (
        "not a printer: answers no Printer-MIB (1.3.6.1.2.1.43) objects "
        f"(the first request failed: {root_failed[0]})"
    )


async def probe_device(
    client: SnmpClient, ip: str, port: int, credentials: Sequence[SnmpCredential]
) -> DeviceProbe:
    failed: list[str] = []
    found, values = await find_credential(client, ip, port, credentials, failed)
    # the device answered: a lost packet now is load, not absence - retry at least once
    target = replace(found, retries=max(1, client.retries))
    varbinds = dict(values)
    # the Printer-MIB check (one GETNEXT) rides along the first identity GETBULK;
    # a failed combined request is asked again per table and per object, and
    # every request that still fails is recorded (a printer is never lost to it)
    walked_failures: list[str] = []
    walked = await client.walk(
        target, oids.IDENTITY_COLUMNS, max_repetitions=8, max_rows=64, also_next=[oids.PRINTER_MIB],
        failures=walked_failures,
    )
    varbinds.update(walked)
    printer, reason = await printer_mib_check(client, target, varbinds, walked_failures)
    failed += walked_failures
    if not printer and reason.startswith("not a printer") and walked_failures and "first request" not in reason:
        reason = f"{reason} (other requests failed: {walked_failures[0]})"
    if printer:  # vendor serial / device-ID fallbacks: printers only, object by object on failure
        sys_oid = values.get(oids.SYS_OBJECT_ID)
        profile = profile_for(sys_oid.value if sys_oid and isinstance(sys_oid.value, str) else None)
        varbinds.update(await client.get(target, profile.identity_oids, failures=failed))
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
