"""printgate policy: a pure decision engine (no I/O, no clock, no asyncio).

Callers build the facts and pass ``now``; the engine returns a
``printgate.domain.Decision`` whose reasons carry a stable ``code`` and a
human ``message`` for every check (allow *and* deny).

Typical use by the session broker (gateway) for "Open web page"::

    from policy import CompiledPolicy, evaluate_dwa_open, load_policy

    compiled = load_policy(ruleset_json_from_store)       # once per version
    decision = evaluate_dwa_open(
        compiled, user=user, device=device,
        dealer_id=customer.dealer_id, customer_id=customer.id, site_id=site.id,
        remote_access=site.access_mode(customer.remote_access),  # the site's own, else the customer's
        alert_min_severity=site.alert_min_severity, open_alerts=open_alerts_of_device,
        reason=session_reason,  # the alert, ticket or text the session is opened for
        agent_online=agent.online, agent_enrolled=not agent.revoked,
        source_ip=source_ip, mfa_age_seconds=mfa_age_seconds,
        now=now, user_live_sessions=n_user, device_live_sessions=n_device,
        approved_until=approval_expiry_or_None,
    )

The store side (``printgate.store.rule_sets``) provides ``load_ruleset`` and
``active_approval_until`` to fill those arguments. Denied decisions whose
``obligations.step_up_mfa`` is set are curable by a fresh TOTP; with
``obligations.requires_customer_approval`` the portal offers to request
approval from a customer admin.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from policy.access import OpenAlert, access_check, open_alerts_of, qualifying_alerts
from policy.compiled import CompiledPolicy
from policy.engine import evaluate
from policy.errors import RuleSetInvalid
from policy.inputs import Action, Context, MfaMethod, Resource, Subject
from policy.rules import RuleSet, default_ruleset, parse_ruleset
from printgate.domain import (
    Agent,
    AlertSeverity,
    Customer,
    CustomerId,
    DealerId,
    Decision,
    Device,
    DeviceAlert,
    Reason,
    RemoteAccessMode,
    SessionReason,
    Site,
    SiteId,
    User,
)

__all__ = [
    "Action",
    "CompiledPolicy",
    "Context",
    "MfaMethod",
    "OpenAlert",
    "Resource",
    "RuleSet",
    "RuleSetInvalid",
    "Subject",
    "access_check",
    "default_ruleset",
    "evaluate",
    "evaluate_dwa_open",
    "evaluate_open_facts",
    "load_policy",
    "open_alerts_of",
    "parse_ruleset",
    "qualifying_alerts",
]


def load_policy(data: Mapping[str, Any] | RuleSet) -> CompiledPolicy:
    """Validate (if needed) and compile a tenant rule set."""
    ruleset = data if isinstance(data, RuleSet) else parse_ruleset(data)
    return CompiledPolicy.build(ruleset)


def evaluate_dwa_open(
    policy: CompiledPolicy,
    *,
    user: User,
    device: Device,
    dealer_id: str,
    customer_id: str,
    site_id: str,
    remote_access: RemoteAccessMode,
    agent_online: bool,
    agent_enrolled: bool,
    source_ip: str,
    mfa_age_seconds: float | None,
    now: datetime,
    mfa_method: MfaMethod | None = MfaMethod.TOTP,
    user_live_sessions: int = 0,
    device_live_sessions: int = 0,
    approved_until: datetime | None = None,
    action: Action = Action.DWA_OPEN,
    alert_min_severity: AlertSeverity = AlertSeverity.CRITICAL,
    open_alerts: tuple[OpenAlert, ...] = (),
    reason: SessionReason | None = None,
) -> Decision:
    """The decision for "user opens device's web page" (docs/architecture.md, DWA flow step 2)."""
    return evaluate(
        policy,
        Subject(user, source_ip, mfa_age_seconds, mfa_method if mfa_age_seconds is not None else None),
        action,
        Resource(
            device, DealerId(dealer_id), CustomerId(customer_id), SiteId(site_id),
            remote_access, agent_online, agent_enrolled, alert_min_severity, open_alerts,
        ),
        Context(now, user_live_sessions, device_live_sessions, approved_until, reason),
    )


def evaluate_open_facts(
    policy: CompiledPolicy,
    *,
    user: User,
    device: Device,
    customer: Customer,
    site: Site | None,
    agent: Agent | None,
    open_alerts: tuple[DeviceAlert, ...] | tuple[OpenAlert, ...],
    reason: SessionReason | None,
    reason_refusal: Reason | None,
    source_ip: str,
    mfa_age_seconds: float | None,
    now: datetime,
    user_live_sessions: int,
    device_live_sessions: int,
    approved_until: datetime | None,
    action: Action = Action.DWA_OPEN,
) -> Decision:
    """The decision from the facts the store gathered for one device (``printgate.store.sessions.
    gather_access_facts``): the ONE mapping the gateway's broker, the test broker and ``policy
    explain`` / the policy page's preview share, so they agree in every remote-access mode. A reason
    that cannot be the session's (another device's alert, a cleared one) refuses before the rules."""
    if reason_refusal is not None:
        return Decision(False, (reason_refusal,))
    alerts = open_alerts_of(a for a in open_alerts if isinstance(a, DeviceAlert))
    alerts += tuple(a for a in open_alerts if isinstance(a, OpenAlert))
    return evaluate_dwa_open(
        policy, user=user, device=device, dealer_id=customer.dealer_id, customer_id=customer.id,
        site_id=device.site_id,
        # the site's own mode if it has one, else the customer's (issue 20)
        remote_access=site.access_mode(customer.remote_access) if site else customer.remote_access,
        alert_min_severity=site.alert_min_severity if site else AlertSeverity.CRITICAL,
        open_alerts=alerts, reason=reason,
        agent_online=bool(agent and agent.online), agent_enrolled=bool(agent and not agent.revoked),
        source_ip=source_ip, mfa_age_seconds=mfa_age_seconds, now=now,
        user_live_sessions=user_live_sessions, device_live_sessions=device_live_sessions,
        approved_until=approved_until, action=action,
    )
