"""Names of the audit event types (``AuditEventIn.type``), one place for all parts.

Dotted ``area.thing.verb``; the entry schema version is ``audit.chain.SCHEMA_VERSION``.
Put identifying values in ``actor``/``source_ip``/``personal`` (pseudonymised),
never in ``details``.
"""

from __future__ import annotations

AUTH_LOGIN = "auth.login"  # outcome success/failure; details: method, reason
AUTH_LOGOUT = "auth.logout"
AUTH_MFA = "auth.mfa"  # details: factor, step_up
AUTH_SSO = "auth.sso"  # details: protocol (saml/oidc), idp
POLICY_DECISION = "policy.decision"  # details: allow, reasons [{code, message}]
DWA_SESSION_REQUESTED = "dwa.session.requested"
DWA_SESSION_AUTHORISED = "dwa.session.authorised"
DWA_SESSION_OPENED = "dwa.session.opened"
DWA_SESSION_CLOSED = "dwa.session.closed"  # details: reason
DWA_SESSION_DENIED = "dwa.session.denied"
DWA_SESSION_FAILED = "dwa.session.failed"
TENANT_SITE_ACCESS_CHANGED = "tenant.site_access_changed"  # details: site, from, to, alert_min_severity (issue 20)
DWA_SESSION_REASON_CLEARED = "dwa.session.reason_cleared"  # details: alert_id, code, cleared_at (issue 20)
PROXY_REQUEST = "proxy.request"  # details: method, path, status, bytes, blocked, why
FIREWALL_RULE_ADDED = "firewall.rule.added"
FIREWALL_RULE_REMOVED = "firewall.rule.removed"
TUNNEL_OPENED = "tunnel.opened"
TUNNEL_CLOSED = "tunnel.closed"
AGENT_ENROLLED = "agent.enrolled"
AGENT_REVOKED = "agent.revoked"
CONFIG_CHANGED = "config.changed"
ROLE_CHANGED = "role.changed"
AUDIT_EXPORTED = "audit.exported"
AUDIT_DOWNLOADED = "audit.export.downloaded"
AUDIT_PERSONAL_ERASED = "audit.personal.erased"
AUDIT_RETENTION_PRUNED = "audit.retention.pruned"
AUDIT_WITNESS_COSIGNED = "audit.witness.cosigned"  # details: witness, tree_size, root, cosigned_at
