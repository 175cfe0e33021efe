"""Enrolment: one-time token + CSR -> agent id, client certificate, channel facts."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gateway.channel.ca import AgentCA, CsrRejected
from printgate.domain import AuditEventIn, Outcome
from printgate.errors import PrintgateError, TokenInvalid
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


class EnrolmentThrottled(PrintgateError):
    code = "enrolment_throttled"


class FailureThrottle:
    """Refuse a source after ``max_failures`` failed enrolments within ``window_s`` (token guessing)."""

    def __init__(self, *, max_failures: int = 10, window_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._max, self._window, self._clock = max_failures, window_s, clock
        self._failures: dict[str, list[float]] = {}

    def _recent(self, source: str) -> list[float]:
        horizon = self._clock() - self._window
        kept = [t for t in self._failures.get(source, []) if t > horizon]
        if kept:
            self._failures[source] = kept
        else:
            self._failures.pop(source, None)
        return kept

    def check(self, source: str) -> None:
        if len(self._recent(source)) >= self._max:
            raise EnrolmentThrottled(
                f"too many failed enrolments from {source}: wait {self._window:.0f}s and use a fresh token")

    def failed(self, source: str) -> None:
        self._failures.setdefault(source, []).append(self._clock())
        if len(self._failures) > 10_000:  # bounded memory under a spray of sources
            self._failures.pop(next(iter(self._failures)))


def new_agent_id() -> str:
    return "agt-" + secrets.token_hex(8)


class Enroller:
    def __init__(self, *, ca: AgentCA, db: Database, audit: AuditSink, verify_key: bytes,
                 facts: ChannelFacts, cert_ttl: timedelta,
                 throttle: FailureThrottle | None = None) -> None:
        self._ca, self._db, self._audit = ca, db, audit
        self._throttle = throttle or FailureThrottle()
        self._verify_key, self._facts, self._ttl = verify_key, facts, cert_ttl

    async def enroll(self, request: pb.EnrollRequest, *, source_ip: str | None) -> pb.EnrollResponse:
        source = source_ip or "unknown"
        try:
            self._throttle.check(source)
        except EnrolmentThrottled as exc:
            await self._audit.append(AuditEventIn(
                type="agent.enrolment", outcome=Outcome.DENIED, actor="agent:unenrolled",
                source_ip=source_ip, details={"reason": exc.code}))
            raise
        agent_id = new_agent_id()
        now = datetime.now(UTC)
        try:
            async with self._db.transaction() as s:
                site_id = await store.redeem_enrolment_token(s, request.token, agent_id=agent_id, now=now)
                issued = self._ca.issue_agent_certificate(
                    request.csr_pem, agent_id=agent_id, site_id=site_id, ttl=self._ttl, now=now)
                await store.ensure_agent(s, agent_id, site_id, name=request.hostname[:200] or agent_id)
                await store.record_certificate(s, issued.record)
        except (TokenInvalid, CsrRejected) as exc:
            await self._audit.append(AuditEventIn(
                type="agent.enrolment", outcome=Outcome.DENIED, actor="agent:unenrolled",
                source_ip=source_ip, details={"reason": exc.code, "hostname": request.hostname[:200]},
            ))
            log.warning("agent.enrolment_refused", reason=exc.code, source=source_ip)
            self._throttle.failed(source)
            raise
        await self._audit.append(AuditEventIn(
            type="agent.enrolment", actor=f"agent:{agent_id}", source_ip=source_ip,
            details={"agent_id": agent_id, "site_id": site_id, "serial": issued.record.serial,
                     "not_after": issued.record.not_after.isoformat(),
                     "hostname": request.hostname[:200]},
        ))
        log.info("agent.enrolled", agent=agent_id, site=site_id, serial=issued.record.serial)
        return pb.EnrollResponse(
            agent_id=agent_id, site_id=site_id, client_cert_pem=issued.pem,
            ca_chain_pem=self._ca.cert_pem, relay_address=self._facts.relay_address,
            relay_host_key_fingerprint=self._facts.relay_host_key_fingerprint,
            command_verify_key=self._verify_key,
            cert_not_after_ms=int(issued.record.not_after.timestamp() * 1000),
            mqtt_url=self._facts.mqtt_url,
        )
