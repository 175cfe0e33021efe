"""The portal's error codes (its failures use the core classes of ``printgate.errors``)."""

from __future__ import annotations

SAML_INVALID = "saml_invalid"
SAML_UNSOLICITED = "saml_unsolicited"
SAML_REPLAY = "saml_replay"
OIDC_INVALID = "oidc_invalid"
OIDC_STATE = "oidc_state"
OIDC_TOKEN = "oidc_token"
OIDC_ERROR = "oidc_error"
SSO_NO_ROLE = "sso_no_role"
SSO_WRONG_TENANT = "sso_wrong_tenant"
USER_DISABLED = "user_disabled"
DATABASE_UNAVAILABLE = "database_unavailable"  # the 503 JSON answer while the database is unreachable
