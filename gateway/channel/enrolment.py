"""Enrolment: one-time token + CSR -> agent id, client certificate, channel facts."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.channel.ca import AgentCA
from gateway.channel.denials import DenialTally
from gateway.errors import CsrRejected, EnrolmentKeyMismatch, EnrolmentThrottled
from printgate.domain import AuditEventIn, Outcome, event_types
from printgate.errors import TokenInvalid
from printgate.interfaces import AuditSink
from printgate.logs import get_logger
from printgate.store import channel as store
from printgate.store.db import Database
from printgate.wire import agent_pb2 as pb

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ChannelFacts:
    """What a freshly enrolled agent needs beyond its certificate."""

    relay_address: str = ""
    relay_host_key_fingerprint: str = ""
    mqtt_url: str = ""


class BackOff:
    """Exponential back-off per key: after ``free`` failures, each further attempt must wait
    ``base_s * 2**(failures - free)`` seconds (at most ``cap_s``) after the last failure.

    A key is forgotten ``forget_s`` after its last failure; at most ``max_keys`` are kept
    (the oldest goes first), so a spray of sources cannot exhaust memory.
    """

    def __init__(self, *, free: int = 5, base_s: float = 1.0, cap_s: float = 300.0,
                 forget_s: float = 900.0, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._free, self._base, self._cap, self._forget = free, base_s, cap_s, forget_s
        self._max_keys, self._clock = max_keys, clock
        self._failures: dict[str, tuple[int, float]] = {}  # key -> (count, last failure)

    def wait_s(self, key: str) -> float:
        """Seconds before ``key`` may try again (0: now)."""
        entry = self._failures.get(key)
        if entry is None:
            return 0.0
        count, last = entry
        now = self._clock()
        if now - last > self._forget:
            del self._failures[key]
            return 0.0
        if count < self._free:
            return 0.0
        delay = min(self._base * 2 ** (count - self._free), self._cap)
        return max(0.0, last + delay - now)

    def failed(self, key: str) -> None:
        count = self._failures.pop(key, (0, 0.0))[0]
        self._failures[key] = (count + 1, self._clock())  # re-inserted: the dict stays oldest-first
        while len(self._failures) > self._max_keys:
            del self._failures[next(iter(self._failures))]


class EnrolmentThrottle:
    """Stops token guessing without locking out the agents behind the guesser's address,
    nor the legitimate agent of a token whose id the guesser knows.

    Tokens are ``pgenrol_<id>_<secret>`` and the id is stored. An attempt naming a token
    id that exists is throttled per (token, source address) -- someone guessing that
    token's secret from their address -- and, much more loosely, per token over all
    addresses (a guesser spread over many addresses); so the token's own agent, from
    another address, still enrols while a guesser is backed off. Any other attempt (an
    unknown id, a malformed token) is throttled per source address. So a valid token
    works from an address that made many failed attempts, and guessing is slowed both
    for a known token and from an address.
    """

    def __init__(self, *, per_address: BackOff | None = None, per_token: BackOff | None = None,
                 per_token_total: BackOff | None = None) -> None:
        self.per_address = per_address or BackOff()
        self.per_token = per_token or BackOff()  # keyed by (token id, source address)
        self.per_token_total = per_token_total or BackOff(free=100, base_s=1.0, cap_s=60.0)

    def check(self, *, token_id: str | None, source: str) -> None:
        if token_id:
            checks = [(self.per_token, f"{token_id}|{source}", f"for this token from {source}"),
                      (self.per_token_total, token_id, "for this token")]
        else:
            checks = [(self.per_address, source, f"from {source}")]
        for limiter, key, what in checks:
            wait = limiter.wait_s(key)
            if wait > 0:
                raise EnrolmentThrottled(
                    f"too many failed enrolments {what}: retry in {wait:.0f} s with the token exactly "
                    "as the admin gave it (or ask for a fresh one)")

    def failed(self, *, token_id: str | None, source: str) -> None:
        if token_id:
            self.per_token.failed(f"{token_id}|{source}")
            self.per_token_total.failed(token_id)
        else:
            self.per_address.failed(source)


def new_agent_id() -> str:
    return "agt-" + secrets.token_hex(8)


def csr_key_sha256(csr_pem: bytes) -> str:
    """SHA-256 (hex) of the DER SubjectPublicKeyInfo in ``csr_pem``: what a retry must present again."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise CsrRejected("certificate request is not a PEM PKCS#10 CSR") from exc
    spki = csr.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


class Enroller:
    def __init__(self, *, ca: AgentCA, db: Database, audit: AuditSink, verify_key: bytes | Callable[[], bytes],
                 facts: ChannelFacts, cert_ttl: timedelta,
                 throttle: EnrolmentThrottle | None = None, denials: DenialTally | None = None) -> None:
        self._ca, self._db, self._audit = ca, db, audit
        self._throttle = throttle or EnrolmentThrottle()
        self._denials = denials
        self._verify_key, self._facts, self._ttl = verify_key, facts, cert_ttl

    async def enroll(self, request: pb.EnrollRequest, *, source_ip: str | None) -> pb.EnrollResponse:
        source = source_ip or "unknown"
        token_id = store.token_id_of(request.token)
        if token_id is not None:
            async with self._db.session() as s:
                if not await store.token_id_known(s, token_id):
                    token_id = None  # a guessed id: throttled by address like any other guess
        try:
            self._throttle.check(token_id=token_id, source=source)
        except EnrolmentThrottled as exc:
            if self._denials is not None:  # audited in aggregate: a guesser cannot flood the trail
                self._denials.count(reason=exc.code, source_ip=source, method="Enrolment/Enroll")
            log.warning("agent.enrolment_throttled", source=source_ip, per_token=token_id is not None)
            raise
        agent_id = new_agent_id()
        now = datetime.now(UTC)
        retried = False
        try:
            key_sha256 = csr_key_sha256(request.csr_pem)
            async with self._db.transaction() as s:
                try:
                    site_id = await store.redeem_enrolment_token(s, request.token, agent_id=agent_id, now=now,
                                                                 key_sha256=key_sha256)
                except TokenInvalid:
                    # A retry (the agent was killed, or its answer lost, after this redemption
                    # committed): the same token with the same key gets its certificate again.
                    used = await store.used_enrolment_token(s, request.token, key_sha256=key_sha256, now=now)
                    if used is None:
                        raise
                    if not used.same_key:
                        raise EnrolmentKeyMismatch(
                            f"this enrolment token already enrolled agent {used.agent_id} with another key; "
                            "a retry must use the key of the first attempt (agent.key.pending in the agent's "
                            "data directory): ask an admin for a new token if that key is lost") from None
                    if await store.agent_standing(s, used.agent_id) is not None:
                        raise TokenInvalid(f"enrolment token was used by agent {used.agent_id}, which is "
                                           "revoked: ask an admin for a new token") from None
                    agent_id, site_id, retried = used.agent_id, used.site_id, True
                issued = self._ca.issue_agent_certificate(
                    request.csr_pem, agent_id=agent_id, site_id=site_id, ttl=self._ttl, now=now)
                await store.ensure_agent(s, agent_id, site_id, name=request.hostname[:200] or agent_id)
                await store.record_certificate(s, issued.record)
        except EnrolmentKeyMismatch as exc:
            # Someone else holds the token, or the agent lost its pending key. Audited one by
            # one: only a holder of the whole token gets here, a guesser cannot flood the trail.
            await self._audit.append(AuditEventIn(
                type=event_types.AGENT_ENROLMENT, outcome=Outcome.DENIED, actor="agent:unenrolled", source_ip=source_ip,
                details={"reason": exc.code, "detail": exc.message, "hostname": request.hostname[:200]},
            ))
            log.warning("agent.enrolment_refused", reason=exc.code, source=source_ip,
                        hostname=request.hostname[:200])
            self._throttle.failed(token_id=token_id, source=source)
            raise
        except (TokenInvalid, CsrRejected) as exc:
            if self._denials is not None:  # aggregated: guessing from many addresses cannot flood the trail
                self._denials.count(reason=exc.code, source_ip=source, method="Enrolment/Enroll")
            else:
                await self._audit.append(AuditEventIn(
                    type=event_types.AGENT_ENROLMENT, outcome=Outcome.DENIED, actor="agent:unenrolled",
                    source_ip=source_ip, details={"reason": exc.code, "hostname": request.hostname[:200]},
                ))
            log.warning("agent.enrolment_refused", reason=exc.code, source=source_ip,
                        hostname=request.hostname[:200])
            self._throttle.failed(token_id=token_id, source=source)
            raise
        await self._audit.append(AuditEventIn(
            type=event_types.AGENT_ENROLMENT, actor=f"agent:{agent_id}", source_ip=source_ip,
            details={"agent_id": agent_id, "site_id": site_id, "serial": issued.record.serial,
                     "not_after": issued.record.not_after.isoformat(),
                     "hostname": request.hostname[:200], "retry": retried},
        ))
        log.info("agent.enrolled", agent=agent_id, site=site_id, serial=issued.record.serial)
        return pb.EnrollResponse(
            agent_id=agent_id, site_id=site_id, client_cert_pem=issued.pem,
            ca_chain_pem=self._ca.cert_pem, relay_address=self._facts.relay_address,
            relay_host_key_fingerprint=self._facts.relay_host_key_fingerprint,
            # the current command-signing key (a callable follows rotations in the key directory)
            command_verify_key=self._verify_key() if callable(self._verify_key) else self._verify_key,
            cert_not_after_ms=int(issued.record.not_after.timestamp() * 1000),
            mqtt_url=self._facts.mqtt_url,
        )

