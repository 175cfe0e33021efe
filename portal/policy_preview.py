"""``policy explain`` as a function: the decision "open web page" would get for a user, a device
and a source address, with every reason, under the tenant's saved rule set or a draft of it.
Used by the policy page's preview and by ``printgate policy explain``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from policy import OpenAlert, RuleSet, default_ruleset, evaluate_dwa_open, load_policy
from printgate.domain import Decision, ReasonKind, SessionReason, User
from printgate.store import approvals, fleet, rule_sets, sessions
from printgate.store.devices import get_device
from printgate.store.tenants import get_agent, tenant_of_site


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
    device = await get_device(s, device_id)
    found = await tenant_of_site(s, device.site_id) if device else None
    if device is None or found is None:
        return None
    customer, site = found
    agent = await get_agent(s, device.agent_id)
    alerts = tuple(OpenAlert(a.id, a.alert.code, a.alert.severity, a.alert.description, a.raised_at)
                   for a in await fleet.open_alerts(s, device.id))
    if reason is not None and reason.kind is ReasonKind.ALERT:
        reason = await sessions.alert_reason(s, device.id, reason.alert_id)
    if ruleset is None:
        body = await rule_sets.load_ruleset(s, customer.dealer_id)
        compiled = load_policy(body) if body else load_policy(default_ruleset(customer.dealer_id))
    else:
        compiled = load_policy(ruleset)
    decision = evaluate_dwa_open(
        compiled, user=user, device=device, dealer_id=customer.dealer_id, customer_id=customer.id,
        site_id=site.id, remote_access=site.access_mode(customer.remote_access),
        alert_min_severity=site.alert_min_severity, open_alerts=alerts, reason=reason,
        agent_online=bool(agent and agent.online), agent_enrolled=bool(agent and not agent.revoked),
        source_ip=source_ip, mfa_age_seconds=mfa_age, now=now,
        user_live_sessions=await sessions.count_live_dwa_sessions(s, user_id=user.id),
        device_live_sessions=await sessions.count_live_dwa_sessions(s, device_id=device.id),
        approved_until=await approvals.active_approval_until(s, user.id, device.id, now),
    )
    header = (f"{user.email} -> {device.name or device.id} ({customer.name}), policy v{compiled.version}, "
              f"source {source_ip}, MFA age {'none' if mfa_age is None else f'{mfa_age:.0f}s'}\n"
              f"remote access at site {site.name}: {site.access_mode(customer.remote_access).value}"
              f"{'' if site.remote_access else ' (as the customer)'}, auto-approval threshold "
              f"{site.alert_min_severity.value}; open alerts: "
              + (", ".join(f"#{a.id} {a.description or a.code} ({a.severity})" for a in alerts) or "none")
              + f"; reason: {reason.label if reason else 'none given'}")
    return Explanation(decision, header)
