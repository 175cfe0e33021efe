"""``evaluate_credential_use``: may the proxy sign a user in to a device with a stored credential?

A right of its own (``credentials.use`` in the role permissions), narrowed per customer by the
dealer (``stored_credentials_roles``) and refusable by the customer itself. Pure: the caller
passes whether the customer forbids it and whether a credential is stored for the device.
Refused: the technician still gets the session, and the device's own login page.
"""

from __future__ import annotations

from policy.compiled import CompiledPolicy
from policy.inputs import Action
from printgate.domain import Decision, Reason, User

ROLE_OK = Reason("credentials.role_allowed", "your role may use stored device credentials")
OWN_DEVICE = Reason("credentials.same_tenant", "the device belongs to your organisation")
OTHER_TENANT = Reason("ownership.other_tenant",
                      "the device belongs to another organisation; its credentials are never used")
CUSTOMER_ALLOWS = Reason("credentials.customer_allows", "the customer allows stored credentials on its devices")
CUSTOMER_FORBIDS = Reason(
    "credentials.customer_forbids",
    "the customer does not allow signing in with stored credentials; log in on the device's own page",
)
STORED = Reason("credentials.stored", "a credential is stored for this device")
NONE_STORED = Reason(
    "credentials.none_stored",
    "no credential is stored for this device, its model or its customer; an administrator can set one",
)
DISABLED = Reason("user.disabled", "your account is disabled")


def _role_denied(user: User) -> Reason:
    roles = ", ".join(sorted(r.value for r in user.roles)) or "no role"
    return Reason("credentials.role_not_permitted",
                  f"your role ({roles}) does not permit using stored device credentials; "
                  "you get the device's own login page")


def evaluate_credential_use(
    policy: CompiledPolicy, *, user: User, dealer_id: str, customer_id: str, customer_name: str = "",
    customer_forbids: bool, stored: bool,
) -> Decision:
    """Every check runs, so a refusal lists all its reasons."""
    denies: list[Reason] = []
    allows: list[Reason] = []
    if user.disabled:
        denies.append(DISABLED)
    perms = policy.permissions
    if any(Action.CREDENTIALS_USE in perms.get(role, ()) for role in user.roles):
        allows.append(ROLE_OK)
    else:
        denies.append(_role_denied(user))
    if user.dealer_id is None or user.dealer_id != dealer_id or dealer_id != policy.dealer_id:
        denies.append(OTHER_TENANT)
        return Decision(False, tuple(denies))
    allows.append(OWN_DEVICE)
    narrowed = policy.ruleset.stored_credentials_roles.get(customer_id)
    if narrowed is not None:
        who = customer_name or customer_id
        if user.roles & narrowed:
            allows.append(Reason("credentials.customer_roles_allowed",
                                 f"your role may use stored credentials at {who}"))
        else:
            names = ", ".join(sorted(r.value for r in narrowed)) or "nobody"
            denies.append(Reason("credentials.customer_roles",
                                 f"at {who} only {names} may use stored device credentials"))
    if customer_forbids:
        denies.append(CUSTOMER_FORBIDS)
    else:
        allows.append(CUSTOMER_ALLOWS)
    if stored:
        allows.append(STORED)
    else:
        denies.append(NONE_STORED)
    return Decision(False, tuple(denies)) if denies else Decision(True, tuple(allows))
