"""Which stored credential (if any) the proxy signs a session in with: the policy's
"use stored device credentials" decision on the store's facts, then the vault (issue 19)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policy import default_ruleset, load_policy
from policy.credentials import evaluate_credential_use
from printgate.domain import Customer, Decision, Device, Reason, User
from printgate.domain.credentials import DeviceLogin
from printgate.errors import VaultError
from printgate.logs import get_logger
from printgate.store import device_credentials
from printgate.store.db import Database
from printgate.vault import CredentialVault

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class CredentialChoice:
    decision: Decision
    login: DeviceLogin | None


class CredentialUse:
    """``choose(...)``: the decision and, when allowed, the credential in clear for the route."""

    def __init__(self, db: Database, vault: CredentialVault) -> None:
        self._db = db
        self._vault = vault

    async def choose(self, *, user: User, device: Device, customer: Customer,
                     ruleset: Mapping[str, Any] | None) -> CredentialChoice:
        compiled = load_policy(ruleset) if ruleset else load_policy(default_ruleset(customer.dealer_id))
        async with self._db.session() as s:
            forbids = await device_credentials.credentials_forbidden(s, customer.id)
            stored = await device_credentials.resolved(s, customer.id, device.id, device.identity.model)
        decision = evaluate_credential_use(
            compiled, user=user, dealer_id=customer.dealer_id, customer_id=customer.id,
            customer_name=customer.name, customer_forbids=forbids, stored=stored is not None,
        )
        if not decision.allow:
            return CredentialChoice(decision, None)
        try:
            login = await self._vault.login_for(customer.id, device.id, device.identity.model)
        except VaultError as exc:  # fail closed: the session opens without signing in
            log.error("vault.open_failed", device=device.id, error=exc.message)
            return CredentialChoice(Decision(False, (Reason("credentials.vault_failed", exc.message),)), None)
        return CredentialChoice(decision, login)
