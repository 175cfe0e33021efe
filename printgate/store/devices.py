"""Devices: inventory rows <-> ``Device``; upsert by identity after discovery."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.domain import AgentId, Device, DeviceId, DeviceIdentity, SiteId
from printgate.store.models.core import CustomerRow, DeviceRow, SiteRow


def device_from_row(row: DeviceRow) -> Device:
    return Device(
        id=DeviceId(row.id),
        site_id=SiteId(row.site_id),
        agent_id=AgentId(row.agent_id),
        ip=row.ip,
        name=row.name,
        ews_port=row.ews_port,
        ews_scheme=row.ews_scheme,
        ews_probe=row.ews_probe or "",
        identity=DeviceIdentity(
            serial=row.serial, mac=row.mac, model=row.model, sys_object_id=row.sys_object_id,
            vendor=row.vendor, sys_name=row.sys_name, location=row.location,
            tls_fingerprint=row.tls_fingerprint,
        ),
        labels=frozenset(row.labels or ()),
        blocked=row.blocked,
        identity_verified=row.identity_verified,
        previous_model=row.previous_model,
        model_changed_at=row.model_changed_at,
    )


def display_name(identity: DeviceIdentity, ip: str) -> str:
    """A short name for people: the model up to its first ';' or ' Rev', else sysName, else ip."""
    model = (identity.model or "").split(";")[0].split(" Rev")[0].strip()
    name = model or (identity.sys_name or "").strip() or ip
    return name if len(name) <= 60 else name[:59].rstrip() + "…"


def _apply_identity(row: DeviceRow, identity: DeviceIdentity, *, now: datetime | None = None) -> None:
    if now is not None and row.model and identity.model and identity.model != row.model:
        row.previous_model = row.model[:256]  # a firmware update or a new description: recorded, not a new device
        row.model_changed_at = now
    for name in ("serial", "mac", "model", "sys_object_id", "vendor", "sys_name", "location"):
        value = getattr(identity, name)
        if value is not None:
            setattr(row, name, value)
    if identity.tls_fingerprint and not row.tls_fingerprint:
        row.tls_fingerprint = identity.tls_fingerprint  # trust on first discovery only


async def get_device(s: AsyncSession, device_id: str) -> Device | None:
    row = await s.get(DeviceRow, device_id)
    return device_from_row(row) if row else None


async def get_devices(s: AsyncSession, device_ids: set[str]) -> dict[str, Device]:
    """The devices of ``device_ids`` that exist, by id, in one query."""
    if not device_ids:
        return {}
    rows = (await s.execute(select(DeviceRow).where(DeviceRow.id.in_(sorted(device_ids))))).scalars().all()
    return {r.id: device_from_row(r) for r in rows}


async def add_device(s: AsyncSession, device: Device, *, now: datetime) -> None:
    row = DeviceRow(
        id=device.id, site_id=device.site_id, agent_id=device.agent_id, ip=device.ip,
        name=device.name, ews_port=device.ews_port, ews_scheme=device.ews_scheme, ews_probe=device.ews_probe,
        labels=sorted(device.labels), blocked=device.blocked,
        identity_verified=device.identity_verified, first_seen=now, last_seen=now,
    )
    _apply_identity(row, device.identity)
    s.add(row)


async def find_by_identity(
    s: AsyncSession, site_id: str, identity: DeviceIdentity, *, ip: str | None = None
) -> DeviceRow | None:
    """The known device at a site that is this one: same serial, else same MAC, else (last
    resort, for printers without either) the same address and sysObjectID with no other
    serial or MAC recorded. The oldest such row when several match."""
    oldest = (DeviceRow.first_seen.asc(), DeviceRow.id.asc())
    for column, value in ((DeviceRow.serial, identity.serial), (DeviceRow.mac, identity.mac)):
        if value:
            result = await s.execute(
                select(DeviceRow).where(DeviceRow.site_id == site_id, column == value).order_by(*oldest)
            )
            row = result.scalars().first()
            if row is not None:
                return row
    if ip is None or not identity.sys_object_id:
        return None
    rows = (await s.execute(
        select(DeviceRow).where(DeviceRow.site_id == site_id, DeviceRow.ip == ip,
                                DeviceRow.sys_object_id == identity.sys_object_id).order_by(*oldest)
    )).scalars().all()
    for row in rows:
        if (row.serial is None or identity.serial is None) and (row.mac is None or identity.mac is None):
            return row
    return None


async def _displaced_at(s: AsyncSession, site_id: str, ip: str, identity: DeviceIdentity) -> list[DeviceRow]:
    """Known devices recorded at ``ip`` whose identity differs from what answers there now."""
    rows = (await s.execute(
        select(DeviceRow).where(DeviceRow.site_id == site_id, DeviceRow.ip == ip)
    )).scalars().all()
    observed = identity
    return [
        row for row in rows
        if device_from_row(row).identity.mismatches(observed)
    ]


async def mark_displaced_unverified(s: AsyncSession, site_id: str, ip: str, identity: DeviceIdentity) -> list[str]:
    """Fail closed when another printer answers at a known device's address: every verified
    device recorded at ``ip`` whose identity differs from ``identity`` is marked unverified (no
    tunnel until re-verified); the ids newly marked (those flagged already are left out)."""
    marked: list[str] = []
    for row in await _displaced_at(s, site_id, ip, identity):
        if not row.identity_verified:
            continue  # flagged already
        row.identity_verified = False
        marked.append(row.id)
    return marked


async def upsert_discovered(
    s: AsyncSession, *, device_id: str, site_id: str, agent_id: str, ip: str,
    identity: DeviceIdentity, ews_port: int, ews_scheme: str, now: datetime, ews_probe: str = "",
) -> Device:
    """Record a discovered printer; the same identity at a new IP keeps its id (returned as stored).

    A changed model text on a known device is kept as ``previous_model`` with
    ``model_changed_at`` = ``now`` (callers audit ``device.firmware_changed``).
    """
    row = await find_by_identity(s, site_id, identity, ip=ip)
    if row is None:
        row = DeviceRow(id=device_id, site_id=site_id, agent_id=agent_id, ip=ip,
                        name=display_name(identity, ip),
                        ews_port=ews_port, ews_scheme=ews_scheme, labels=[],
                        first_seen=now)
        s.add(row)
    row.ip = ip
    row.agent_id = agent_id
    row.ews_port, row.ews_scheme = ews_port, ews_scheme  # where the web page answers now (0: none)
    row.ews_probe = ews_probe[:1000] if ews_port <= 0 else ""  # how each port failed (0: none)
    row.last_seen = now
    _apply_identity(row, identity, now=now)
    await s.flush()  # column defaults of a new row are set
    return device_from_row(row)


async def list_devices_of_dealer(s: AsyncSession, dealer_id: str) -> list[tuple[Device, str]]:
    """Every device owned by the dealer, with the customer's name."""
    result = await s.execute(
        select(DeviceRow, CustomerRow.name)
        .join(SiteRow, SiteRow.id == DeviceRow.site_id)
        .join(CustomerRow, CustomerRow.id == SiteRow.customer_id)
        .where(CustomerRow.dealer_id == dealer_id)
        .order_by(CustomerRow.name, DeviceRow.name)
    )
    return [(device_from_row(row), name) for row, name in result.all()]


async def dealer_of_device(s: AsyncSession, device_id: str) -> tuple[str, str] | None:
    """(dealer id, customer id) owning ``device_id``."""
    result = await s.execute(
        select(CustomerRow.dealer_id, CustomerRow.id)
        .join(SiteRow, SiteRow.customer_id == CustomerRow.id)
        .join(DeviceRow, DeviceRow.site_id == SiteRow.id)
        .where(DeviceRow.id == device_id)
    )
    found = result.first()
    return (found[0], found[1]) if found else None


async def repin(s: AsyncSession, device_id: str) -> bool:
    """Forget the pinned certificate and trust the device again (an authorised user's decision);
    False when there is no such device.

    The next discovery pins the certificate the device then presents.
    """
    row = await s.get(DeviceRow, device_id)
    if row is not None:
        row.tls_fingerprint = None
        row.identity_verified = True
    return row is not None


async def devices_named(s: AsyncSession, ref: str, *, limit: int = 200) -> list[Device]:
    """Devices whose IP address is ``ref``, or whose name or sysName is ``ref`` (ignoring case),
    or whose model starts with it (the portal's display name): ``printgate policy explain --device``."""
    from sqlalchemy import func, or_

    wanted = ref.strip().lower()
    rows = (await s.scalars(select(DeviceRow).where(or_(
        DeviceRow.ip == ref.strip(), func.lower(DeviceRow.name) == wanted,
        func.lower(DeviceRow.sys_name) == wanted, func.lower(DeviceRow.model).startswith(wanted),
    )).order_by(DeviceRow.id).limit(limit))).all()
    return [device_from_row(r) for r in rows]
