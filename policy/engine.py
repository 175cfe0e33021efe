"""``evaluate``: (policy, subject, action, resource, context) -> Decision.

Every check runs (no short-circuit) so a refusal lists *all* its reasons; an
allow lists the reason of every passed check. Pure: no I/O, no clock.
"""

from __future__ import annotations

from policy import reasons as R
from policy.access import access_check
from policy.compiled import CompiledPolicy
from policy.inputs import Action, Context, Resource, Subject
from printgate.domain import Decision, Obligations, Reason


def _owns(subject: Subject, resource: Resource, action: Action) -> bool:
    user = subject.user
    if user.dealer_id is not None:
        return user.dealer_id == resource.dealer_id
    if user.customer_id is not None and not action.is_dwa:
        # customer users see (never open) their own customer's devices
        return user.customer_id == resource.customer_id
    return False


def _role_allows(policy: CompiledPolicy, subject: Subject, action: Action) -> bool:
    perms = policy.permissions
    return any(action in perms.get(role, ()) for role in subject.roles)


def _role_denied(subject: Subject, action: Action) -> Reason:
    roles = ", ".join(sorted(r.value for r in subject.roles)) or "no role"
    return Reason("role.not_permitted", f"your role ({roles}) does not permit {action.value}")


def evaluate(
    policy: CompiledPolicy,
    subject: Subject,
    action: Action,
    resource: Resource | None,
    context: Context,
) -> Decision:
    """Decide whether ``subject`` may do ``action`` on ``resource`` now."""
    denies: list[Reason] = []
    allows: list[Reason] = []
    step_up = False
    approval = False

    if subject.user.disabled:
        denies.append(R.USER_DISABLED)
    if _role_allows(policy, subject, action):
        allows.append(R.ROLE_OK)
    else:
        denies.append(_role_denied(subject, action))

    if resource is None:
        if action.is_dwa:
            denies.append(Reason("resource.missing", "no device was named for remote access"))
        return _decide(policy, denies, allows, step_up, approval)

    if resource.dealer_id != policy.dealer_id or not _owns(subject, resource, action):
        denies.append(R.OWNERSHIP_OTHER)
        # nothing about another tenant's device is revealed beyond this
        return _decide(policy, denies, allows, step_up, approval)
    allows.append(R.OWNERSHIP_OK)

    if not action.is_dwa:
        return _decide(policy, denies, allows, step_up, approval)

    device = resource.device
    device_ok = True
    if device.blocked:
        denies.append(R.DEVICE_BLOCKED)
        device_ok = False
    if not resource.agent_enrolled:
        denies.append(R.DEVICE_NOT_ENROLLED)
        device_ok = False
    elif not resource.agent_online:
        denies.append(R.DEVICE_OFFLINE)
        device_ok = False
    if not device.identity_verified:
        denies.append(R.DEVICE_UNVERIFIED)
        device_ok = False
    if device.ews_port <= 0:
        denies.append(R.no_web_page(device.ews_probe))
        device_ok = False
    if device_ok:
        allows.append(R.DEVICE_OK)

    access = access_check(
        resource.remote_access, now=context.now, approved_until=context.approved_until,
        min_severity=resource.alert_min_severity, open_alerts=resource.open_alerts, reason=context.reason,
    )
    allows.extend(access.allows)
    denies.extend(access.denies)
    approval = approval or access.approval

    mfa = policy.base_mfa(subject, resource, context)
    if mfa is None:
        allows.append(R.MFA_FRESH)
    else:
        denies.append(mfa)
        step_up = True

    limits = policy.base_limits(subject, resource, context)
    rules_ok = True
    if limits is not None:
        denies.append(limits)
        rules_ok = False
    for rule in policy.rules_for(resource):
        failed = rule.check(subject, resource, context)
        if failed is not None:
            denies.append(failed)
            rules_ok = False
            step_up = step_up or rule.step_up
    if rules_ok:
        allows.append(R.SESSIONS_OK)
        allows.append(R.RULES_OK)
    return _decide(policy, denies, allows, step_up, approval)


def _decide(
    policy: CompiledPolicy, denies: list[Reason], allows: list[Reason], step_up: bool,
    approval: bool,
) -> Decision:
    if denies:
        return Decision(
            False, tuple(denies),
            Obligations(requires_customer_approval=approval, step_up_mfa=step_up),
        )
    rs = policy.ruleset
    return Decision(
        True, tuple(allows),
        Obligations(
            max_duration_seconds=rs.session_max_minutes * 60,
            idle_timeout_seconds=rs.idle_timeout_minutes * 60,
        ),
    )
