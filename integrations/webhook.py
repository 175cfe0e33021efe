"""Signed webhooks: one JSON POST per event, HMAC-SHA256 over ``<timestamp>.<body>``.

Headers of every call::

    Content-Type: application/json
    X-Printgate-Event: alert.opened
    X-Printgate-Event-Id: evt_...         (stable across retries: de-duplicate on it)
    X-Printgate-Timestamp: 1767225600     (Unix seconds of this attempt)
    X-Printgate-Signature: t=1767225600,v1=<hex HMAC-SHA256(secret, "1767225600." + body)>

A receiver recomputes the HMAC over the exact bytes it received, compares in constant time
and refuses a timestamp further than the replay window (``REPLAY_WINDOW_SECONDS``, 5 minutes)
from its clock (``verify_signature``). During a secret rotation the header carries one ``v1=``
per valid secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from integrations.addresses import check_literal, resolve_public, resolve_sync
from integrations.errors import EndpointInvalid, SignatureExpired, SignatureInvalid
from printgate.logs import get_logger

log = get_logger("integrations.webhook")

SIGNATURE_HEADER = "X-Printgate-Signature"
EVENT_ID_HEADER = "X-Printgate-Event-Id"
EVENT_HEADER = "X-Printgate-Event"
TIMESTAMP_HEADER = "X-Printgate-Timestamp"
USER_AGENT = "printgate-webhooks/1"
REPLAY_WINDOW_SECONDS = 300
MAX_URL_LENGTH = 2048
_ERROR_BODY_LIMIT = 512
# answers worth trying again; any other 4xx says the receiver will not take this event as it is
_RETRYABLE_4XX = frozenset({408, 409, 425, 429})


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``b"<timestamp>." + body`` under ``secret``."""
    return hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_header(secrets: bytes | list[bytes], timestamp: int, body: bytes) -> str:
    """``t=<timestamp>,v1=<hex>[,v1=<hex>...]`` (one ``v1`` per secret: rotation)."""
    keys = [secrets] if isinstance(secrets, bytes) else secrets
    return ",".join([f"t={timestamp}", *(f"v1={sign(k, timestamp, body)}" for k in keys)])


def verify_signature(secret: bytes, header: str, body: bytes, *, now: float | None = None,
                     tolerance: int = REPLAY_WINDOW_SECONDS) -> int:
    """Check a ``X-Printgate-Signature`` header against ``body``; return its timestamp.

    Raises ``SignatureInvalid`` (malformed, no matching ``v1``) or ``SignatureExpired``
    (signed, but older or newer than ``tolerance`` seconds)."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureInvalid("signature header is not t=<seconds>,v1=<hex>")
        if key == "t":
            if not value.isdigit() or len(value) > 12:
                raise SignatureInvalid("signature timestamp is not a number of seconds")
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureInvalid("signature header lacks t= or v1=")
    expected = sign(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise SignatureInvalid("signature does not match the body (wrong secret or altered body)")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureExpired(f"signature timestamp is {int(current - timestamp)} s from now, "
                               f"outside the {tolerance} s replay window")
    return timestamp


def check_url(url: str, *, allow_private: bool = False, resolve: bool = True) -> str:
    """The endpoint address printgate will call, or ``EndpointInvalid`` saying why not.

    Only http(s), no user-info, at most 2,048 characters; unless ``allow_private``, the host
    must resolve only to public addresses (a dealer's endpoint never reaches the cloud's own
    network: loopback, private, link-local and metadata addresses are refused)."""
    url = url.strip()
    if not url or len(url) > MAX_URL_LENGTH:
        raise EndpointInvalid(f"webhook address must be 1-{MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise EndpointInvalid(f"webhook address is not a URL: {exc}") from exc
    if parts.scheme not in ("https", "http"):
        raise EndpointInvalid("webhook address must start with https:// (or http://)")
    if not parts.hostname:
        raise EndpointInvalid("webhook address has no host")
    if parts.username or parts.password:
        raise EndpointInvalid("webhook address must not carry a user name or password; "
                              "the signature authenticates printgate")
    if parts.fragment:
        raise EndpointInvalid("webhook address must not have a #fragment")
    if allow_private:
        return url
    host = parts.hostname
    if resolve:
        resolve_sync(host, port or (443 if parts.scheme == "https" else 80), what="webhook")
    else:
        check_literal(host, what="webhook")
    return url


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What one attempt did: ``ok`` (2xx), the HTTP status, an error text, and whether
    trying again may help (``retryable``; ``retry_after`` seconds when the receiver said)."""

    ok: bool
    status: int | None
    error: str
    retryable: bool
    duration_s: float
    retry_after: float | None = None


class PublicOnlyBackend(httpcore.AsyncNetworkBackend):
    """Resolves the host itself and connects only when every address is public, to the address
    it checked: a name that resolves to a public address for ``check_url`` and to an internal one
    a moment later (DNS rebinding) still never reaches the cloud's own network. TLS still
    verifies the certificate against the host name."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        try:  # on the dedicated resolver pool, bounded; every address checked
            addresses = await resolve_public(host, port, what="webhook")
        except EndpointInvalid as exc:
            raise httpcore.ConnectError(f"{exc.message}: refused") from exc
        return await self._inner.connect_tcp(addresses[0], port, timeout, local_address, socket_options)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks never use Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class WebhookTransport:
    """POSTs signed events; one shared HTTP client (``aclose()`` when done). Redirects are
    not followed (the signature is for the configured address only). Unless ``allow_private``,
    connections go only to public addresses, checked at connect time (``PublicOnlyBackend``)."""

    def __init__(self, *, timeout: float = 10.0, allow_private: bool = False,
                 verify: bool | str = True) -> None:
        self.timeout = timeout
        self.allow_private = allow_private
        transport = httpx.AsyncHTTPTransport(verify=verify, trust_env=False)
        if not allow_private:
            ctx = (ssl.create_default_context(cafile=verify) if isinstance(verify, str)
                   else ssl.create_default_context())
            if verify is False:
                ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            transport._pool = httpcore.AsyncConnectionPool(ssl_context=ctx, network_backend=PublicOnlyBackend())
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False, transport=transport,
                                         headers={"user-agent": USER_AGENT}, trust_env=False)

    async def deliver(self, url: str, secret: bytes | list[bytes], *, event_id: str, kind: str,
                      body: bytes, timestamp: int | None = None) -> DeliveryResult:
        """One attempt: never raises for the receiver's failures, reports them."""
        started = time.monotonic()
        ts = int(time.time()) if timestamp is None else timestamp
        try:  # the address's form; its resolution is checked at connect time (PublicOnlyBackend)
            check_url(url, allow_private=self.allow_private, resolve=False)
        except EndpointInvalid as exc:
            return DeliveryResult(False, None, exc.message, False, 0.0)
        headers = {"content-type": "application/json", EVENT_HEADER: kind, EVENT_ID_HEADER: event_id,
                   TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: signature_header(secret, ts, body)}
        try:  # httpx's timeout is per read; the whole call is bounded too (a receiver that drips)
            async with asyncio.timeout(self.timeout * 2), \
                    self._client.stream("POST", url, content=body, headers=headers) as r:
                head = b""
                if not r.is_success:
                    async for chunk in r.aiter_bytes():
                        head += chunk
                        if len(head) >= _ERROR_BODY_LIMIT:
                            break
        except TimeoutError:
            return DeliveryResult(False, None, f"no complete answer within {self.timeout * 2:g} s", True,
                                  time.monotonic() - started)
        except httpx.HTTPError as exc:
            return DeliveryResult(False, None, f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__,
                                  True, time.monotonic() - started)
        took = time.monotonic() - started
        if r.is_success:
            return DeliveryResult(True, r.status_code, "", False, took)
        retry_after = _retry_after(r.headers.get("retry-after"))
        text = head[:_ERROR_BODY_LIMIT].decode("utf-8", "replace").strip()
        retryable = r.status_code >= 500 or r.status_code in _RETRYABLE_4XX
        if r.is_redirect:
            text = f"redirect to {r.headers.get('location', '?')} not followed; configure the final address"
        return DeliveryResult(False, r.status_code, f"HTTP {r.status_code} {text}"[:300], retryable, took,
                              retry_after)

    async def aclose(self) -> None:
        await self._client.aclose()


def _retry_after(value: str | None) -> float | None:
    if value is None or not value.strip().isdigit():
        return None
    return min(float(value.strip()), 3600.0)
