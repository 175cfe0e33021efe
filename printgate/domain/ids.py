"""Typed ids of every domain object."""

from __future__ import annotations

from typing import NewType

DealerId = NewType("DealerId", str)


CustomerId = NewType("CustomerId", str)


SiteId = NewType("SiteId", str)


AgentId = NewType("AgentId", str)


DeviceId = NewType("DeviceId", str)


UserId = NewType("UserId", str)


SessionId = NewType("SessionId", str)
