"""``policy explain`` as a function: the decision "open web page" would get for a user, a device
and a source address, with every reason, under the tenant's saved rule set or a draft of it.
Used by the policy page's preview and by ``printgate policy explain``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from policy import RuleSet, default_ruleset, evaluate_open_facts, load_policy, open_alerts_of
from printgate.domain import Decision, SessionReason, User
from printgate.store import sessions


@dataclass(frozen=True, slots=True)
class Explanation:
    decision: Decision
    header: str

    @property
    def text(self) -> str:
        return f"{self.header}\n{self.decision.explain()}"


async def explain_open(s: AsyncSession, user: User, device_id: str, *, source_ip: str, mfa_age: float | None,
                       now: datetime, ruleset: RuleSet | None = None,
                       reason: SessionReason | None = None) -> Explanation | None:
    """None when there is no such device. ``ruleset``: a draft instead of the saved one; ``reason``:
    the session's reason (an alert by id is taken from the device's alerts, as the broker does)."""
    facts = await sessions.gather_access_facts(s, user, device_id, now, reason=reason)  # as the broker
    if facts is None:
        return None
    device, customer, site, reason = facts.device, facts.customer, facts.site, facts.reason
    alerts = open_alerts_of(facts.open_alerts)
    if ruleset is None:
        compiled = load_policy(facts.ruleset) if facts.ruleset else load_policy(default_ruleset(customer.dealer_id))
    else:
        compiled = load_policy(ruleset)
    decision = evaluate_open_facts(
        compiled, user=user, device=device, customer=customer, site=site, agent=facts.agent,
        open_alerts=facts.open_alerts, reason=reason, reason_refusal=facts.reason_refusal,
        source_ip=source_ip, mfa_age_seconds=mfa_age, now=now, user_live_sessions=facts.user_live_sessions,
        device_live_sessions=facts.device_live_sessions, approved_until=facts.approved_until)
    header = (f"{user.email} -> {device.name or device.id} ({customer.name}), policy v{compiled.version}, "
              f"source {source_ip}, MFA age {'none' if mfa_age is None else f'{mfa_age:.0f}s'}\n"
              f"remote access at site {site.name}: {site.access_mode(customer.remote_access).value}"
              f"{'' if site.remote_access else ' (as the customer)'}, auto-approval threshold "
              f"{site.alert_min_severity.value}; open alerts: "
              + (", ".join(f"#{a.id} {a.description or a.code} ({a.severity})" for a in alerts) or "none")
              + f"; reason: {reason.label if reason else 'no reason given'}")
    return Explanation(decision, header)
