"""Device credentials in and out (portal/routers/device_credentials.py): write-only, so the input
(``CredentialIn``) and output (``CredentialPublic``) types are apart; ``Revealed`` is the one answer
that holds a secret (break glass, after a customer administrator's approval, once)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from printgate.domain.credentials import CredentialScope, LoginKind, StoredCredential


class CredentialIn(BaseModel):
    """A credential to store (set or rotate); the password is accepted, never returned."""

    customer_id: str = Field(min_length=1, max_length=64)
    scope: CredentialScope
    target: str = Field(default="", max_length=256)  # device id, model, or "" for the customer
    kind: LoginKind
    account: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=256)
    profile: str = Field(default="", max_length=64)


class CredentialRef(BaseModel):
    customer_id: str = Field(min_length=1, max_length=64)
    scope: CredentialScope
    target: str = Field(default="", max_length=256)


class CredentialPublic(BaseModel):
    """What anyone may read about a stored credential: everything but the secret."""

    customer_id: str
    scope: CredentialScope
    target: str
    kind: LoginKind
    account: str
    profile: str
    version: int
    updated_at: str
    updated_by: str | None

    @classmethod
    def of(cls, c: StoredCredential) -> CredentialPublic:
        return cls(customer_id=c.customer_id, scope=c.scope, target=c.target, kind=c.kind, account=c.account,
                   profile=c.profile, version=c.version, updated_at=c.updated_at.isoformat(),
                   updated_by=c.updated_by)


class CredentialUse(BaseModel):
    customer_id: str = Field(min_length=1, max_length=64)
    forbidden: bool


class RevealRequestIn(BaseModel):
    device_id: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=3, max_length=500)


class RevealRequestOut(BaseModel):
    request_id: str
    approval_id: str
    status: str


class Revealed(BaseModel):
    """The one answer that holds a secret: after a customer administrator's approval, once."""

    account: str
    password: str
    kind: LoginKind
    version: int
    approved_until: str
