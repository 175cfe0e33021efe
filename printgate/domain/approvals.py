"""Customer approvals: a technician's request to open a device whose customer requires approval."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from printgate.domain.ids import CustomerId, DeviceId, UserId

PENDING, APPROVED, DENIED = "pending", "approved", "denied"


@dataclass(frozen=True, slots=True)
class Approval:
    """``status`` is ``pending``, ``approved`` (until ``approved_until``) or ``denied``."""

    id: str
    user_id: UserId
    device_id: DeviceId
    customer_id: CustomerId
    status: str
    reason: str
    requested_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    approved_until: datetime | None = None
