"""A ``SessionBroker`` for portal tests: the real policy engine and the real store, no tunnel.

It decides like ``gateway.broker.DwaBroker`` (same facts, same policy, the
decision audited) and stores the session as authorised, but opens no relay,
proxy or firewall; the launch URL points back at the portal's session list.
The gateway's broker itself runs in the end-to-end suite.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from policy import default_ruleset, evaluate_open_facts, load_policy
from printgate.domain import (
    AuditEventIn,
    Decision,
    DeviceId,
    DwaSession,
    DwaState,
    DwaTarget,
    Outcome,
    Reason,
    SessionId,
    SessionReason,
    User,
    event_types,
)
from printgate.interfaces import AuditSink, SessionLaunch, SessionRefused
from printgate.store import sessions as sessions_store
from printgate.store.db import Database
from printgate.store.session_history import live_session_on_device
from printgate.store.sessions import load_session, save_session


class PolicyBroker:
    def __init__(self, db: Database, clock: Callable[[], datetime], launch_base: str,
                 audit: AuditSink | None = None) -> None:
        self.db, self.clock, self.launch_base, self.audit = db, clock, launch_base, audit

    async def open_session(self, user: User, device_id: DeviceId, *, source_ip: str,
                           mfa_age_seconds: float | None,
                           reason: SessionReason | None = None) -> SessionLaunch | SessionRefused:
        now: datetime = self.clock()
        async with self.db.transaction() as s:  # the same gathering as the gateway's broker
            facts = await sessions_store.gather_access_facts(s, user, device_id, now, reason=reason)
            if facts is None:
                d = Decision(False, (Reason("ownership.other_tenant", "no such device of yours"),))
                return SessionRefused(d, "access refused")
            device, reason = facts.device, facts.reason
            policy = load_policy(facts.ruleset) if facts.ruleset else load_policy(
                default_ruleset(facts.customer.dealer_id))
            decision = evaluate_open_facts(
                policy, user=user, device=device, customer=facts.customer, site=facts.site, agent=facts.agent,
                open_alerts=facts.open_alerts, reason=reason, reason_refusal=facts.reason_refusal,
                source_ip=source_ip, mfa_age_seconds=mfa_age_seconds, now=now,
                user_live_sessions=facts.user_live_sessions, device_live_sessions=facts.device_live_sessions,
                approved_until=facts.approved_until)
        if self.audit is not None:  # like gateway.broker.DwaBroker: the broker audits its decisions
            await self.audit.append(AuditEventIn(
                type=event_types.POLICY_DECISION, outcome=Outcome.SUCCESS if decision.allow else Outcome.DENIED,
                actor=user.email, dealer_id=user.dealer_id, device_id=device_id, source_ip=source_ip,
                details={"action": "dwa.open", "allow": decision.allow,
                         "reasons": [{"code": r.code, "message": r.message} for r in decision.reasons],
                         **({"session_reason": reason.to_dict()} if reason else {}),
                         "session_reason_label": reason.label if reason else "no reason given"},
            ))
        async with self.db.transaction() as s:
            if not decision.allow:
                return SessionRefused(decision, "access refused by policy")
            session = DwaSession(SessionId(secrets.token_hex(8)), user.id, device.id, device.agent_id,
                                 DwaTarget(device.ip, device.ews_port, device.ews_scheme), now,
                                 now + timedelta(seconds=decision.obligations.max_duration_seconds or 600),
                                 reason=reason)
            session = session.transition(DwaState.AUTHORISED, at=now, reason="policy allowed")
            await save_session(s, session)
        return SessionLaunch(session, f"{self.launch_base}/sessions?launched={session.id}", decision)

    async def close_session(self, session_id: SessionId, *, reason: str, actor: str) -> None:
        async with self.db.transaction() as s:
            session = await load_session(s, session_id)
            if session and not session.state.is_final:
                await save_session(s, session.transition(DwaState.CLOSED, at=self.clock(), reason=reason))

    async def drop_credentials(self, customer_id: str, *, reason: str, actor: str) -> int:
        return 0  # no proxy routes here: sessions never sign in to a device

    async def get_session(self, session_id: SessionId) -> DwaSession | None:
        async with self.db.session() as s:
            return await load_session(s, session_id)

    async def rejoin_session(self, user_id: str, device_id: DeviceId, *, source_ip: str) -> str | None:
        async with self.db.session() as s:
            sid = await live_session_on_device(s, user_id, device_id, self.clock())
        return f"{self.launch_base}/sessions?launched={sid}&rejoined=1" if sid else None
