"""What the approvals API (portal/routers/approvals.py) answers."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class ApprovalState(BaseModel):
    id: str
    status: str
    device_id: str
    approved_until: datetime | None
    decided_by: str | None
