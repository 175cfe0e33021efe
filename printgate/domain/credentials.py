"""Stored device credentials (issue 19): what the vault keeps per device, model or customer.

``DeviceLogin`` carries a password in clear and lives only in memory for one session
(broker -> proxy route); its ``repr`` never shows the password. ``StoredCredential`` is
what anyone may read about a stored secret: everything but the secret.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class LoginKind(enum.StrEnum):
    BASIC = "basic"  # HTTP Basic (RFC 7617)
    DIGEST = "digest"  # HTTP Digest (RFC 7616)
    FORM = "form"  # the device's login page (a vendor login profile or the generic one)


class CredentialScope(enum.StrEnum):
    """What a stored credential applies to; the most specific one wins."""

    DEVICE = "device"  # target: the device id
    MODEL = "model"  # target: the device model as discovered (exact, case-insensitive)
    CUSTOMER = "customer"  # target: "" (every device of the customer)


SCOPE_ORDER = (CredentialScope.DEVICE, CredentialScope.MODEL, CredentialScope.CUSTOMER)
MAX_ACCOUNT = 128
MAX_SECRET = 256


@dataclass(frozen=True, slots=True)
class DeviceLogin:
    """A credential in clear for one session's lifetime (never stored, logged or shown)."""

    kind: LoginKind
    account: str
    password: str = field(repr=False)
    profile: str = ""  # form login profile name; "" = by the device's vendor, else generic
    version: int = 0
    scope: CredentialScope = CredentialScope.DEVICE


@dataclass(frozen=True, slots=True)
class StoredCredential:
    """A stored credential as listed: never the secret."""

    customer_id: str
    scope: CredentialScope
    target: str
    kind: LoginKind
    account: str
    profile: str
    version: int
    updated_at: datetime
    updated_by: str | None


@dataclass(frozen=True, slots=True)
class RevealRequest:
    """A break-glass request to see a stored password, bound to a customer approval; revealed once."""

    id: str
    approval_id: str
    user_id: str
    device_id: str
    customer_id: str
    requested_at: datetime
    revealed_at: datetime | None
