"""Dealers' webhook endpoints: add (the secret is made here, sealed under the vault's master key
and shown once), enable/disable, send a test event, list deliveries, redeliver dead letters.
Every change is audited (``integration.webhook.*``)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from integrations.errors import EndpointInvalid
from integrations.webhook import DeliveryResult, WebhookTransport, check_url
from printgate.domain import AuditEventIn, Outcome, event_types
from printgate.interfaces import AuditSink
from printgate.store import outbox
from printgate.store.db import Database
from printgate.vault.kms import KeyWrapper

ENDPOINT_ADDED = event_types.INTEGRATION_WEBHOOK_ADDED
ENDPOINT_ENABLED = event_types.INTEGRATION_WEBHOOK_ENABLED
ENDPOINT_DISABLED = event_types.INTEGRATION_WEBHOOK_DISABLED
ENDPOINT_TESTED = event_types.INTEGRATION_WEBHOOK_TESTED
DELIVERY_REDELIVERED = event_types.INTEGRATION_WEBHOOK_REDELIVERED
TEST_KIND = "printgate.test"
MAX_ENDPOINTS_PER_DEALER = 20


@dataclass(frozen=True, slots=True)
class NewEndpoint:
    endpoint: outbox.WebhookEndpoint
    secret: str  # shown once, never stored in clear


class WebhookEndpoints:
    def __init__(self, db: Database, kms: KeyWrapper, audit: AuditSink, transport: WebhookTransport, *,
                 allow_private: bool = False, on_redeliver: Callable[[], None] | None = None,
                 clock: Callable[[], datetime] | None = None,
                 max_endpoints: int = MAX_ENDPOINTS_PER_DEALER) -> None:
        self.db, self.kms, self.audit, self.transport = db, kms, audit, transport
        self.max_endpoints = max_endpoints
        self.allow_private = allow_private
        self._on_redeliver = on_redeliver
        self._clock = clock or (lambda: datetime.now(UTC))

    def check(self, url: str, kinds: Sequence[str]) -> str:
        """The address as it will be called; ``EndpointInvalid`` saying what to fix."""
        checked = check_url(url, allow_private=self.allow_private)
        unknown = sorted(set(kinds) - set(outbox.EVENT_KINDS))
        if unknown:
            raise EndpointInvalid(f"unknown event kinds: {', '.join(unknown)}")
        return checked

    async def new_secret(self, dealer_id: str) -> tuple[str, str, outbox.SealedSecret]:
        """A new endpoint id, its secret (show it once) and the secret sealed for storage."""
        endpoint_id = outbox.new_endpoint_id()
        secret = "whsec_" + secrets.token_urlsafe(32)
        sealed = await self.kms.wrap(secret.encode(), outbox.secret_context(endpoint_id, dealer_id))
        return endpoint_id, secret, outbox.SealedSecret(sealed, await self.kms.key_id())

    async def deliver_test(self, endpoint: outbox.WebhookEndpoint, sealed: outbox.SealedSecret,
                           by: str) -> DeliveryResult:
        """POST a signed ``printgate.test`` event to ``endpoint`` now (not through the outbox)."""
        secret = await self.kms.unwrap(sealed.sealed, outbox.secret_context(endpoint.id, endpoint.dealer_id))
        event_id = outbox.new_event_id()
        body = json.dumps({"id": event_id, "type": TEST_KIND, "created_at": self._clock().isoformat().replace("+00:00", "Z"),
                           "dealer_id": endpoint.dealer_id, "data": {"endpoint": endpoint.id, "by": by}},
                          sort_keys=True, separators=(",", ":")).encode()
        return await self.transport.deliver(endpoint.url, secret, event_id=event_id, kind=TEST_KIND, body=body)

    def wake(self) -> None:
        if self._on_redeliver is not None:
            self._on_redeliver()

    async def add(self, *, dealer_id: str, url: str, description: str, kinds: Sequence[str],
                  by: str, source_ip: str | None = None) -> NewEndpoint:
        """Check the address, make and seal a secret, store and audit; ``EndpointInvalid`` on bad input."""
        checked = self.check(url, kinds)
        async with self.db.session() as s:
            if len(await outbox.list_endpoints(s, dealer_id)) >= self.max_endpoints:
                raise EndpointInvalid(f"at most {self.max_endpoints} webhook endpoints per dealer "
                                      "([integrations] max_endpoints_per_dealer); disable or reuse one")
        endpoint_id, secret, sealed = await self.new_secret(dealer_id)
        async with self.db.transaction() as s:
            ep = await outbox.add_endpoint(
                s, endpoint_id=endpoint_id, dealer_id=dealer_id, url=checked,
                description=description.strip(), kinds=kinds, secret=sealed, by=by, now=self._clock())
        await self.audit.append(AuditEventIn(
            type=ENDPOINT_ADDED, actor=by, dealer_id=dealer_id, source_ip=source_ip,
            details={"endpoint": ep.id, "url": ep.url, "kinds": list(ep.kinds) or ["*"]}))
        return NewEndpoint(ep, secret)

    async def listing(self, dealer_id: str) -> list[outbox.WebhookEndpoint]:
        async with self.db.session() as s:
            return await outbox.list_endpoints(s, dealer_id)

    async def set_enabled(self, *, dealer_id: str, endpoint_id: str, enabled: bool, by: str,
                          source_ip: str | None = None) -> outbox.WebhookEndpoint:
        async with self.db.transaction() as s:
            ep = await outbox.set_endpoint_enabled(s, dealer_id, endpoint_id, enabled=enabled, now=self._clock())
        await self.audit.append(AuditEventIn(
            type=ENDPOINT_ENABLED if enabled else ENDPOINT_DISABLED, actor=by, dealer_id=dealer_id,
            source_ip=source_ip, details={"endpoint": ep.id, "url": ep.url}))
        return ep

    async def send_test(self, *, dealer_id: str, endpoint_id: str, by: str,
                        source_ip: str | None = None) -> DeliveryResult:
        """POST a signed ``printgate.test`` event now (not through the outbox); audited with the outcome."""
        async with self.db.session() as s:
            ep = await outbox.get_endpoint(s, dealer_id, endpoint_id)
            sealed = await outbox.endpoint_secret(s, endpoint_id)
        result = await self.deliver_test(ep, sealed, by)
        await self.audit.append(AuditEventIn(
            type=ENDPOINT_TESTED, actor=by, dealer_id=dealer_id, source_ip=source_ip,
            outcome=Outcome.SUCCESS if result.ok else Outcome.FAILURE,
            details={"endpoint": ep.id, "status": result.status, "error": result.error[:200]}))
        return result

    async def deliveries(self, dealer_id: str, *, status: str | None = None,
                         limit: int = 100) -> list[outbox.DeliveryView]:
        async with self.db.session() as s:
            return await outbox.deliveries_of_dealer(s, dealer_id, status=status, limit=limit)

    async def redeliver(self, *, dealer_id: str, delivery_id: int, by: str,
                        source_ip: str | None = None) -> outbox.DeliveryView:
        async with self.db.transaction() as s:
            view = await outbox.redeliver(s, dealer_id, delivery_id, now=self._clock())
        await self.audit.append(AuditEventIn(
            type=DELIVERY_REDELIVERED, actor=by, dealer_id=dealer_id, source_ip=source_ip,
            details={"delivery": delivery_id, "event": view.event_id, "endpoint": view.endpoint_id}))
        self.wake()
        return view
