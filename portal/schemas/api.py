"""What the JSON API (portal/routers/api.py) answers: output types apart from rows, so nothing secret can leak."""

from __future__ import annotations

from pydantic import BaseModel


class DevicePublic(BaseModel):
    id: str
    name: str
    customer: str
    model: str | None
    serial: str | None
    blocked: bool


class UserPublic(BaseModel):
    id: str
    email: str
    display_name: str
    roles: list[str]
    dealer_id: str | None
    customer_id: str | None


class DwaSessionPublic(BaseModel):
    id: str
    device_id: str
    state: str
    expires_at: str
