"""Access requests as people read them (technician, device and customer by name) and the
notices sent when a technician asks and when a customer administrator decides."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from portal.notifications import Notice
from printgate.domain import Approval, Role
from printgate.store.devices import get_device
from printgate.store.tenants import get_customer, get_user
from printgate.store.users import list_users

DURATIONS = ((30, "30 minutes"), (60, "1 hour"), (120, "2 hours"), (240, "4 hours"), (480, "8 hours"))


@dataclass(frozen=True, slots=True)
class ApprovalLine:
    approval: Approval
    technician: str
    technician_email: str
    device: str
    customer: str

    @property
    def minutes_granted(self) -> int | None:
        a = self.approval
        if a.approved_until is None or a.decided_at is None:
            return None
        return round((a.approved_until - a.decided_at).total_seconds() / 60)


async def approval_lines(s: AsyncSession, approvals: Sequence[Approval]) -> list[ApprovalLine]:
    names: dict[str, tuple[str, str]] = {}
    out = []
    for a in approvals:
        if a.user_id not in names:
            user = await get_user(s, a.user_id)
            names[a.user_id] = (user.display_name, user.email) if user else (a.user_id, "")
        key = f"device:{a.device_id}"
        if key not in names:
            device = await get_device(s, a.device_id)
            names[key] = ((device.name or device.identity.describe()) if device else a.device_id, "")
        key_c = f"customer:{a.customer_id}"
        if key_c not in names:
            customer = await get_customer(s, a.customer_id)
            names[key_c] = (customer.name if customer else a.customer_id, "")
        tech, email = names[a.user_id]
        out.append(ApprovalLine(a, tech, email, names[key][0], names[key_c][0]))
    return out


async def approvers_of(s: AsyncSession, customer_id: str) -> tuple[str, ...]:
    """E-mail addresses of the customer's administrators who decide on requests."""
    return tuple(u.email for u in await list_users(s, customer_id=customer_id)
                 if Role.CUSTOMER_ADMIN in u.roles and not u.disabled)


def requested_notice(line: ApprovalLine, approvers: tuple[str, ...], portal_url: str) -> Notice:
    a = line.approval
    text = (f"{line.technician} ({line.technician_email}) asks to open the web page of {line.device} "
            f"at {line.customer}.\n\nReason: {a.reason or '(none given)'}\n\n"
            f"Approve (for how long) or deny: {portal_url.rstrip('/')}/approvals\n")
    return Notice("approval.requested", f"printgate: {line.technician} asks to open {line.device}", text,
                  approvers, _data(line))


def decided_notice(line: ApprovalLine, portal_url: str) -> Notice:
    a = line.approval
    if a.status == "approved" and a.approved_until is not None:
        what = f"approved until {a.approved_until:%H:%M} UTC"
        todo = f"Open it from {portal_url.rstrip('/')}/devices"
    else:
        what, todo = "denied", "Ask the customer's administrators if you still need it."
    text = (f"Your request to open the web page of {line.device} at {line.customer} was {what} "
            f"by {a.decided_by}.\n\n{todo}\n")
    return Notice(f"approval.{a.status}", f"printgate: access to {line.device} {what}", text,
                  (line.technician_email,) if line.technician_email else (), _data(line))


def _data(line: ApprovalLine) -> dict[str, object]:
    a = line.approval
    return {"approval_id": a.id, "status": a.status, "technician": line.technician,
            "technician_email": line.technician_email, "device_id": a.device_id, "device": line.device,
            "customer_id": a.customer_id, "customer": line.customer, "reason": a.reason,
            "approved_until": a.approved_until.isoformat() if a.approved_until else None,
            "decided_by": a.decided_by}
