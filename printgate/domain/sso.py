"""Single sign-on: a tenant's identity provider and a sign-in in flight."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class SsoProvider:
    """A tenant's SAML or OIDC identity provider and its group -> role mapping.

    ``config`` is kind-specific and validated by the portal (``SamlConfig``, ``OidcConfig``).
    """

    id: str
    kind: str  # "saml" | "oidc"
    name: str
    dealer_id: str | None = None
    customer_id: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    role_map: dict[str, str] = field(default_factory=dict)  # group -> role
    default_roles: tuple[str, ...] = ()
    mfa_asserted: bool = False
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class SsoPending:
    """An SSO sign-in in flight (one use): OIDC state -> nonce + PKCE verifier; SAML AuthnRequest id."""

    state: str
    provider_id: str
    created_at: datetime
    nonce: str = ""
    code_verifier: str = ""
