"""Devices and the identity recorded at discovery (what a tunnel is checked against)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from printgate.domain.ids import AgentId, DeviceId, SiteId

_VERSION_WORD = re.compile(
    r"\b(?:firmware|fw|ver(?:sion)?|rev(?:ision)?|build|v)\b\.?\s*[:=]?\s*\S*\d\S*", re.IGNORECASE
)


_VERSION_NUMBER = re.compile(r"(?<![\w-])\d+(?:\.\d+)+\S*|\([^)]*\d[^)]*\)")


def normalised_model(model: str) -> str:
    """A model without what firmware updates change: the text after ';' or ',', version
    words and numbers ("Firmware Ver.1.01 (08.12.12)", "Rev 2.3", "V4.10"), case, spacing."""
    head = re.split(r"[;,]", model, maxsplit=1)[0]
    head = _VERSION_NUMBER.sub(" ", _VERSION_WORD.sub(" ", head))
    return " ".join(head.lower().split())


def normalised_field(name: str, value: str) -> str:
    if name == "mac":
        return value.lower().replace("-", ":")
    return value.strip()


def enterprise_of(sys_object_id: str | None) -> str | None:
    """The IANA enterprise number in a sysObjectID (1.3.6.1.4.1.<n>...), the maker."""
    if not sys_object_id or not sys_object_id.startswith("1.3.6.1.4.1."):
        return None
    return sys_object_id.split(".")[6] if len(sys_object_id.split(".")) > 6 else None


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """What a device is, as recorded at discovery. ``None`` means unknown."""

    serial: str | None = None
    mac: str | None = None
    model: str | None = None
    sys_object_id: str | None = None
    vendor: str | None = None
    sys_name: str | None = None
    location: str | None = None
    tls_fingerprint: str | None = None  # sha256 hex of the EWS certificate (DER)

    def mismatches(self, observed: DeviceIdentity) -> list[str]:
        """Identity fields known on both sides whose values differ.

        Identity rests on the serial, the MAC and the maker (sysObjectID's
        enterprise); the model counts only when neither serial nor MAC is
        known on both sides, and then normalised (``normalised_model``), so a
        firmware update that rewrites the description is not another device.
        """
        diffs: list[str] = []
        anchored = False
        for name in ("serial", "mac"):
            expected, seen = getattr(self, name), getattr(observed, name)
            if expected is not None and seen is not None:
                anchored = True
                if normalised_field(name, expected) != normalised_field(name, seen):
                    diffs.append(name)
        if enterprise_of(self.sys_object_id) and enterprise_of(observed.sys_object_id) and (
            enterprise_of(self.sys_object_id) != enterprise_of(observed.sys_object_id)
        ):
            diffs.append("sys_object_id")
        if not anchored and self.model is not None and observed.model is not None and (
            normalised_model(self.model) != normalised_model(observed.model)
        ):
            diffs.append("model")
        return diffs

    def describe(self) -> str:
        return self.serial or self.mac or self.model or "unknown device"


@dataclass(frozen=True, slots=True)
class Device:
    id: DeviceId
    site_id: SiteId
    agent_id: AgentId
    ip: str
    identity: DeviceIdentity
    name: str = ""
    ews_port: int = 80
    ews_scheme: str = "http"
    ews_probe: str = ""  # ews_port 0: each web port the agent tried and how it failed
    labels: frozenset[str] = frozenset()
    blocked: bool = False
    identity_verified: bool = True
    previous_model: str | None = None  # the model text before its last change (firmware update)
    model_changed_at: datetime | None = None
