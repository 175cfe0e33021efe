"""Builders for the policy's inputs (plain data; the engine is pure): a user, a device, and the
subject, resource and context of one decision, each with readable defaults and keyword overrides.
Used by the policy unit tests and by ``benchmarks/policy.py``."""

from __future__ import annotations

from datetime import UTC, datetime

from policy import Context, Resource, Subject
from printgate.domain import (
    AgentId,
    CustomerId,
    DealerId,
    Device,
    DeviceId,
    DeviceIdentity,
    RemoteAccessMode,
    Role,
    SiteId,
    User,
    UserId,
)

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # a Wednesday


def make_user(*roles: Role, dealer: str | None = "d1", customer: str | None = None, disabled: bool = False,
              user_id: str = "u1", email: str = "tech@example.org") -> User:
    return User(UserId(user_id), email, "Tech", frozenset(roles or {Role.TECHNICIAN}),
                DealerId(dealer) if dealer else None, CustomerId(customer) if customer else None,
                disabled)


def make_device(**kw: object) -> Device:
    base: dict[str, object] = dict(
        id=DeviceId("dev1"), site_id=SiteId("s1"), agent_id=AgentId("a1"), ip="127.0.20.1",
        identity=DeviceIdentity(serial="CN123", model="HP LaserJet M404"), name="Front desk",
    )
    base.update(kw)
    return Device(**base)  # type: ignore[arg-type]


def make_resource(device: Device | None = None, *, dealer: str = "d1", customer: str = "c1",
                  site: str = "s1", mode: RemoteAccessMode = RemoteAccessMode.OPEN,
                  online: bool = True, enrolled: bool = True) -> Resource:
    return Resource(device or make_device(), DealerId(dealer), CustomerId(customer), SiteId(site),
                    mode, online, enrolled)


def make_subject(user: User | None = None, *, ip: str = "127.0.0.1", mfa_age: float | None = 30.0) -> Subject:
    return Subject(user or make_user(), ip, mfa_age)


def make_context(**kw: object) -> Context:
    base: dict[str, object] = {"now": NOW}
    base.update(kw)
    return Context(**base)  # type: ignore[arg-type]
