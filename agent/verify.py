"""Device identity verification before a tunnel opens and for every new connection (docs/architecture.md, DWA flow step 5).

The device at the target address must still be the device recorded at
discovery: every identity field known in the record (serial, MAC, model) must
be observed with the same value, and for HTTPS EWS the certificate's SHA-256
fingerprint must equal the pinned one. A success is cached for at most
``cache_seconds`` (≤ 30 s); failures are never cached. On mismatch the
injected ``report(expected, observed)`` is awaited (the cloud is told) and
``IdentityMismatch`` is raised with a message for the technician.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from agent.errors import TLS_NO_CERTIFICATE
from printgate.domain import DeviceIdentity, enterprise_of, normalised_field, normalised_model
from printgate.errors import IdentityMismatch, PrintgateError
from printgate.logs import get_logger

log = get_logger("agent.verify")

Probe = Callable[[str], Awaitable[DeviceIdentity]]
TlsProbe = Callable[[str, int], Awaitable[str]]
Report = Callable[[DeviceIdentity, DeviceIdentity], Awaitable[None]]

MAX_CACHE_SECONDS = 30.0
IDENTITY_FIELDS = ("serial", "mac", "model")
ANCHORS = ("serial", "mac")  # what identifies the physical device


def identity_differences(expected: DeviceIdentity, observed: DeviceIdentity) -> list[str]:
    """Identity recorded at discovery that is now missing or different (fail closed).

    A serial or MAC recorded must be answered, equal. The maker (the
    sysObjectID's enterprise) must not change. The model counts only for a
    device recorded without serial and MAC, and then normalised: a firmware
    update that rewrites the description never refuses a device whose serial
    and MAC still match (``DeviceIdentity.mismatches`` has the same rule).
    """
    diffs: list[str] = []
    anchored = False
    for name in ANCHORS:
        want = getattr(expected, name)
        if want is None:
            continue
        anchored = True
        seen = getattr(observed, name)
        if seen is None or normalised_field(name, seen) != normalised_field(name, want):
            diffs.append(name)
    want_maker, seen_maker = enterprise_of(expected.sys_object_id), enterprise_of(observed.sys_object_id)
    if want_maker is not None and seen_maker is not None and want_maker != seen_maker:
        diffs.append("sys_object_id")
    if not anchored and expected.model is not None and (
        observed.model is None or normalised_model(observed.model) != normalised_model(expected.model)
    ):
        diffs.append("model")
    if expected.tls_fingerprint is not None:
        seen_fp = observed.tls_fingerprint
        if seen_fp is None or not hmac.compare_digest(seen_fp.lower(), expected.tls_fingerprint.lower()):
            diffs.append("tls_fingerprint")
    return diffs


def mismatch_message(ip: str, expected: DeviceIdentity, observed: DeviceIdentity, diffs: list[str]) -> str:
    first = diffs[0]
    seen = getattr(observed, first)
    answered = f"{first} {seen} answered" if seen is not None else f"no {first} answered"
    return (
        f"the device at {ip} is no longer printer {expected.describe()} ({answered}); "
        "refusing the connection — rediscover the device or ask an administrator to re-pin it"
    )


def _no_verify_context() -> ssl.SSLContext:
    # Printers present self-signed certificates: trust comes from the pinned
    # fingerprint compared afterwards, never from the PKI.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


async def tls_certificate_sha256(ip: str, port: int, *, timeout: float = 2.0) -> str:
    """SHA-256 hex of the DER certificate the EWS at ``ip:port`` presents."""
    async with asyncio.timeout(timeout):
        _reader, writer = await asyncio.open_connection(ip, port, ssl=_no_verify_context())
    try:
        ssl_obj = writer.get_extra_info("ssl_object")
        der = ssl_obj.getpeercert(binary_form=True) if ssl_obj is not None else None
        if not der:
            raise PrintgateError(f"the EWS at {ip}:{port} presented no certificate", code=TLS_NO_CERTIFICATE)
        return hashlib.sha256(der).hexdigest()
    finally:
        writer.close()


class DeviceVerifier:
    """``await verifier()`` passes when the target is still the recorded device."""

    def __init__(
        self,
        ip: str,
        expected: DeviceIdentity,
        probe: Probe,
        *,
        report: Report | None = None,
        tls_port: int | None = None,
        tls_probe: TlsProbe = tls_certificate_sha256,
        cache_seconds: float = MAX_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not any(getattr(expected, f) for f in IDENTITY_FIELDS) and expected.tls_fingerprint is None:
            raise IdentityMismatch(
                f"no identity was recorded for the device at {ip}: rediscover it before opening a tunnel"
            )
        self.ip = ip
        self.expected = expected
        self._probe = probe
        self._report = report
        self._tls_port = tls_port if expected.tls_fingerprint is not None else None
        self._tls_probe = tls_probe
        self._cache_seconds = min(cache_seconds, MAX_CACHE_SECONDS)
        self._clock = clock
        self._verified_until = float("-inf")
        self._lock = asyncio.Lock()
        self.probes = 0

    def invalidate(self) -> None:
        self._verified_until = float("-inf")

    async def __call__(self) -> None:
        if self._clock() < self._verified_until:
            return
        async with self._lock:  # concurrent connections share one probe
            if self._clock() < self._verified_until:
                return
            observed = await self._observe()
            diffs = identity_differences(self.expected, observed)
            if diffs:
                message = mismatch_message(self.ip, self.expected, observed, diffs)
                log.warning("device.identity_mismatch", ip=self.ip, fields=diffs)
                if self._report is not None:
                    try:
                        await self._report(self.expected, observed)
                    except Exception as exc:  # reporting must not turn a refusal into an allow
                        log.error("device.mismatch_report_failed", ip=self.ip, error=str(exc))
                raise IdentityMismatch(message)
            self._verified_until = self._clock() + self._cache_seconds

    async def _observe(self) -> DeviceIdentity:
        self.probes += 1
        try:
            observed = await self._probe(self.ip)
        except PrintgateError as exc:
            raise IdentityMismatch(
                f"the device at {self.ip} could not be identified ({exc.message}); refusing the connection"
            ) from exc
        except (OSError, TimeoutError) as exc:
            raise IdentityMismatch(
                f"the device at {self.ip} did not answer the identity check ({exc or 'timeout'}); "
                "refusing the connection"
            ) from exc
        if self._tls_port is not None:
            try:
                fingerprint = await self._tls_probe(self.ip, self._tls_port)
            except (OSError, TimeoutError, ssl.SSLError, PrintgateError) as exc:
                raise IdentityMismatch(
                    f"the device at {self.ip}:{self._tls_port} did not complete TLS ({exc or 'timeout'}); "
                    "refusing the connection"
                ) from exc
            observed = replace(observed, tls_fingerprint=fingerprint)
        return observed
