"""Webhook signing secrets of security-alert subscriptions, sealed under the vault's master key
(AES-256-GCM through the ``KeyWrapper`` of ``printgate.vault.kms``), bound to the dealer and
the target address: a sealed secret copied to another row does not open."""

from __future__ import annotations

import base64

from alerting.errors import DeliveryFailed
from printgate.errors import VaultError
from printgate.vault.kms import KeyWrapper

PREFIX = "sealed:"


def _context(dealer_id: str | None, target: str) -> bytes:
    return f"printgate-security-alert-secret:{dealer_id or '-'}:{target}".encode()


async def seal(kms: KeyWrapper, secret: str, *, dealer_id: str | None, target: str) -> str:
    wrapped = await kms.wrap(secret.encode(), _context(dealer_id, target))
    return PREFIX + base64.b64encode(wrapped).decode()


async def unseal(kms: KeyWrapper, stored: str, *, dealer_id: str | None, target: str) -> str:
    if not stored.startswith(PREFIX):
        raise DeliveryFailed("the subscription's webhook secret is not sealed; remove and add it again")
    try:
        return (await kms.unwrap(base64.b64decode(stored[len(PREFIX):]), _context(dealer_id, target))).decode()
    except (VaultError, ValueError) as exc:
        raise DeliveryFailed(f"the subscription's webhook secret does not open: {exc}") from exc
