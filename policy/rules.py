"""Tenant rule sets as validated data (pydantic), parsed once, versioned.

A dealer (tenant) owns one current ``RuleSet``. Admins change it as JSON; it is
validated here (bad input raises ``RuleSetInvalid`` naming the field) and then
compiled (``policy.compiled``) before any request is evaluated.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Mapping
from datetime import time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from policy.errors import RuleSetInvalid
from policy.inputs import Action
from printgate.domain import Role


class Weekday(enum.StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


WEEKDAYS = tuple(Weekday)  # index = datetime.weekday()


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Scope(_Frozen):
    """Where a rule applies: the whole tenant, one customer, or one site."""

    customer_id: str | None = None
    site_id: str | None = None

    def describe(self) -> str:
        if self.site_id:
            return f"site {self.site_id}"
        if self.customer_id:
            return f"customer {self.customer_id}"
        return "all devices"


class _RuleBase(_Frozen):
    id: str = Field(min_length=1, max_length=64)
    description: str = ""
    scope: Scope = Field(default_factory=Scope)


class TimeWindowRule(_RuleBase):
    """DWA only on these days between ``start`` and ``end`` in ``timezone``."""

    kind: Literal["time_window"] = "time_window"
    timezone: str
    days: frozenset[Weekday] = frozenset(WEEKDAYS[:5])
    start: time = time(8, 0)
    end: time = time(18, 0)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/Berlin)") from exc
        return value

    @model_validator(mode="after")
    def _ordered(self) -> TimeWindowRule:
        if self.start == self.end:
            raise ValueError("start and end of a time window must differ")
        if not self.days:
            raise ValueError("a time window needs at least one day")
        return self


class SourceIpRule(_RuleBase):
    """DWA only from these source networks."""

    kind: Literal["source_ip"] = "source_ip"
    cidrs: tuple[str, ...] = Field(min_length=1)

    @field_validator("cidrs")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as exc:
                raise ValueError(f"{cidr!r} is not an IP network (e.g. 10.0.0.0/8)") from exc
        return value


class DeviceLabelRule(_RuleBase):
    """The device must carry one of ``require_any`` and none of ``forbid``."""

    kind: Literal["device_labels"] = "device_labels"
    require_any: frozenset[str] = frozenset()
    forbid: frozenset[str] = frozenset()

    @model_validator(mode="after")
    def _something(self) -> DeviceLabelRule:
        if not self.require_any and not self.forbid:
            raise ValueError("a label rule needs require_any or forbid")
        return self


class DeviceModelRule(_RuleBase):
    """The device model must match one of these glob patterns (case-insensitive)."""

    kind: Literal["device_model"] = "device_model"
    allow: tuple[str, ...] = Field(min_length=1)


class SessionLimitRule(_RuleBase):
    kind: Literal["session_limit"] = "session_limit"
    per_user: int | None = Field(default=None, ge=0)
    per_device: int | None = Field(default=None, ge=0)


class MfaRule(_RuleBase):
    """Stricter MFA freshness for this scope."""

    kind: Literal["mfa"] = "mfa"
    max_age_minutes: int = Field(ge=0, le=24 * 60)


class RoleRule(_RuleBase):
    """Only these roles may open DWA in this scope."""

    kind: Literal["roles"] = "roles"
    allowed: frozenset[Role] = Field(min_length=1)


class DenyRule(_RuleBase):
    """No DWA at all in this scope (e.g. a site under audit)."""

    kind: Literal["deny"] = "deny"


Rule = Annotated[
    TimeWindowRule | SourceIpRule | DeviceLabelRule | DeviceModelRule | SessionLimitRule
    | MfaRule | RoleRule | DenyRule,
    Field(discriminator="kind"),
]

DEFAULT_PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.DEALER_ADMIN: frozenset({"dwa.*", "device.read", "audit.read", "admin.*", "credentials.use"}),
    Role.TECHNICIAN: frozenset({"dwa.*", "device.read", "credentials.use"}),
    Role.VIEWER: frozenset({"device.read"}),
    Role.AUDITOR: frozenset({"device.read", "audit.read"}),
    Role.CUSTOMER_ADMIN: frozenset({"device.read", "audit.read", "approval.decide", "admin.users"}),
}


class RuleSet(_Frozen):
    """One tenant's whole policy. ``version`` increases with every change."""

    dealer_id: str
    version: int = Field(default=0, ge=0)
    mfa_max_age_minutes: int = Field(default=15, ge=0, le=24 * 60)
    max_sessions_per_user: int = Field(default=3, ge=0)
    max_sessions_per_device: int = Field(default=1, ge=0)
    session_max_minutes: int = Field(default=30, ge=1, le=24 * 60)
    idle_timeout_minutes: int = Field(default=10, ge=1, le=24 * 60)
    permissions: dict[Role, frozenset[str]] = Field(default_factory=lambda: dict(DEFAULT_PERMISSIONS))
    rules: tuple[Rule, ...] = ()
    # per customer: only these roles (of those with credentials.use) may use the customer's
    # stored device credentials; an empty set: nobody (docs/credential-injection.md)
    stored_credentials_roles: dict[str, frozenset[Role]] = Field(default_factory=dict)

    @field_validator("permissions")
    @classmethod
    def _known_actions(cls, value: dict[Role, frozenset[str]]) -> dict[Role, frozenset[str]]:
        known = {a.value for a in Action}
        for role, actions in value.items():
            for action in actions:
                prefix = action.removesuffix("*")
                if action.endswith("*"):
                    if not any(k.startswith(prefix) for k in known):
                        raise ValueError(f"role {role}: pattern {action!r} matches no action")
                elif action not in known:
                    raise ValueError(f"role {role}: unknown action {action!r} (known: {sorted(known)})")
        return value

    @model_validator(mode="after")
    def _unique_ids(self) -> RuleSet:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"duplicate rule id {rule.id!r}")
            seen.add(rule.id)
        return self


def parse_ruleset(data: Mapping[str, Any]) -> RuleSet:
    """Validate rule-set data; raise ``RuleSetInvalid`` naming every bad field."""
    try:
        return RuleSet.model_validate(dict(data))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise RuleSetInvalid(f"policy rule set rejected: {problems}") from exc


def default_ruleset(dealer_id: str) -> RuleSet:
    return RuleSet(dealer_id=dealer_id)
