"""Transitional: the identity repositories now live in one module per noun.

Rule sets (``rule_sets``), users' sign-in columns (``users``), portal sessions
(``portal_sessions``), recovery codes, API tokens, SSO, invitations, approvals
(``approvals``, returning ``printgate.domain.Approval``), live DWA session counts
(``sessions``) and tenant administration lists (``tenants``). This module only
re-exports them for code written against it while issue 16 lands; import from the
noun modules instead (it goes once nothing imports it).
"""

from printgate.store.api_tokens import (
    add_api_token as add_api_token,
)
from printgate.store.api_tokens import (
    find_api_token as find_api_token,
)
from printgate.store.api_tokens import (
    list_api_tokens as list_api_tokens,
)
from printgate.store.approvals import (
    active_approval_until as active_approval_until,
)
from printgate.store.approvals import (
    decide_approval as decide_approval,
)
from printgate.store.approvals import (
    get_approval as get_approval,
)
from printgate.store.approvals import (
    list_approvals_of_customer as list_approvals_of_customer,
)
from printgate.store.approvals import (
    list_approvals_of_user as list_approvals_of_user,
)
from printgate.store.approvals import (
    pending_approval as pending_approval,
)
from printgate.store.approvals import (
    request_approval as request_approval,
)
from printgate.store.invitations import (
    add_invitation as add_invitation,
)
from printgate.store.invitations import (
    find_invitation as find_invitation,
)
from printgate.store.invitations import (
    list_invitations as list_invitations,
)
from printgate.store.portal_sessions import (
    add_portal_session as add_portal_session,
)
from printgate.store.portal_sessions import (
    delete_portal_session as delete_portal_session,
)
from printgate.store.portal_sessions import (
    delete_user_portal_sessions as delete_user_portal_sessions,
)
from printgate.store.portal_sessions import (
    get_portal_session as get_portal_session,
)
from printgate.store.recovery_codes import (
    replace_recovery_codes as replace_recovery_codes,
)
from printgate.store.recovery_codes import (
    use_recovery_code as use_recovery_code,
)
from printgate.store.rule_sets import (
    load_ruleset as load_ruleset,
)
from printgate.store.rule_sets import (
    save_ruleset as save_ruleset,
)
from printgate.store.sessions import (
    count_live_dwa_sessions as count_live_dwa_sessions,
)
from printgate.store.sessions import (
    live_dwa_session_ids_of_user as live_dwa_session_ids_of_user,
)
from printgate.store.sso import (
    add_sso_pending as add_sso_pending,
)
from printgate.store.sso import (
    add_sso_provider as add_sso_provider,
)
from printgate.store.sso import (
    get_sso_provider as get_sso_provider,
)
from printgate.store.sso import (
    list_sso_providers as list_sso_providers,
)
from printgate.store.sso import (
    pop_sso_pending as pop_sso_pending,
)
from printgate.store.sso import (
    remember_once as remember_once,
)
from printgate.store.tenants import (
    get_customer_row as get_customer_row,
)
from printgate.store.tenants import (
    list_customers_of_dealer as list_customers_of_dealer,
)
from printgate.store.tenants import (
    list_sites_of_customers as list_sites_of_customers,
)
from printgate.store.users import (
    accept_totp_step as accept_totp_step,
)
from printgate.store.users import (
    get_user_row as get_user_row,
)
from printgate.store.users import (
    list_users as list_users,
)
