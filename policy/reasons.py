"""Reason codes and their messages: one constant per outcome of every rule.

Codes are stable (tests, the portal and auditors match on them); messages are
for humans. Allow-side reasons are shared constants so an allow costs no
allocation per rule.
"""

from __future__ import annotations

from printgate.domain import Reason

# ownership
OWNERSHIP_OK = Reason("ownership.same_tenant", "the device belongs to your organisation")
OWNERSHIP_OTHER = Reason(
    "ownership.other_tenant", "the device belongs to another organisation; access is never granted"
)
# the user
USER_DISABLED = Reason("user.disabled", "your account is disabled")
ROLE_OK = Reason("role.allowed", "your role permits this action")
# MFA
MFA_FRESH = Reason("mfa.fresh", "your second factor was verified recently")
MFA_NOT_NEEDED = Reason("mfa.not_required", "this action does not need a fresh second factor")
# device
DEVICE_BLOCKED = Reason("device.blocked", "the device is blocked by an administrator")
DEVICE_NOT_ENROLLED = Reason(
    "device.not_enrolled", "the device's agent is not enrolled or was revoked"
)
DEVICE_OFFLINE = Reason("device.offline", "the device's agent is offline; try again when it reconnects")
DEVICE_UNVERIFIED = Reason(
    "device.identity_unverified",
    "the device's identity could not be verified (serial/MAC/model changed)",
)
DEVICE_NO_WEB_PAGE = Reason(
    "device.no_web_page",
    "no web page was found on this printer: none of the ports the agent tries (its ews_candidates "
    "setting, by default 443/https and 80/http) answered; the printer is still monitored. Add the "
    "printer's web port to ews_candidates in the agent's agent.toml and rescan",
)


def no_web_page(tried: str) -> Reason:
    """``device.no_web_page`` naming each port the agent tried and how it failed, when it said."""
    if not tried:
        return DEVICE_NO_WEB_PAGE
    return Reason(
        DEVICE_NO_WEB_PAGE.code,
        f"no web page was found on this printer: the agent tried {tried}; the printer is still "
        "monitored. If its web page is on another port, add it to ews_candidates in the agent's "
        "agent.toml and rescan",
    )


DEVICE_OK = Reason("device.ready", "the device is enrolled, online, verified and not blocked")
# customer
CUSTOMER_NEVER = Reason(
    "customer.remote_access_never", "the customer does not allow remote web access to its devices"
)
CUSTOMER_APPROVAL_REQUIRED = Reason(
    "customer.approval_required",
    "the customer requires approval by one of its administrators; request it from the refusal page",
)
CUSTOMER_APPROVED = Reason("customer.approved", "a customer administrator approved this access")
CUSTOMER_OPEN = Reason("customer.open", "the customer allows remote web access")
CUSTOMER_TICKET_REQUIRED = Reason(
    "customer.ticket_required",
    "the customer requires a ticket reference for remote access: give the ticket's id in the "
    "open form (Reason: ticket)",
)
# concurrency
SESSIONS_OK = Reason("sessions.within_limits", "concurrent session limits are respected")
# conditional rules (allow side)
RULES_OK = Reason("rules.satisfied", "all tenant rules for this device are satisfied")
