"""Names of the audit event types (``AuditEventIn.type``), one place for all parts.

Every type any part writes is a constant here, and emit sites (``AuditEventIn(type=...)``,
``PortalState.record(...)`` and the other forwarding helpers) use the constant, never a
string literal; ``tests/test_event_types.py`` scans the tree for it. It sits in the core
(``printgate.domain``) so the vault, integrations and the CLI can use it under the layering
contracts; the portal's audit filter lists every value.

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
GATEWAY_AGENT_TASK_FAILED = "gateway.agent_task.failed"  # details: task, attempts, error, lost (issue 14)
GATEWAY_NODE_TAKEN_OVER = "gateway.node.taken_over"  # details: node, by_node, lease_expired_at, sessions_ended (issue 18)
GATEWAY_NODE_DRAINING = "gateway.node.draining"  # details: node, live_sessions, grace_seconds, sessions_end_by (issue 18)
GATEWAY_NODE_DRAINED = "gateway.node.drained"  # details: node, sessions_at_start, ended_on_their_own, ended_by_drain (issue 18)
GATEWAY_NODE_COMMAND_TIMED_OUT = "gateway.node.command_timed_out"  # details: node, target_node, kind, agent_id, timeout_s (issue 18)
GATEWAY_NODE_FANOUT = "gateway.node.fanout"  # details: node, batch_id, kind, agents, per_node, ok, failed, offline (issue 18)
DWA_SESSION_DELEGATED = "dwa.session.delegated"  # details: node, owner_node, step, command_id, outcome (issue 18)
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

# ---- every other type the parts write, by area (issue 16: no literal type at an emit site;
# tests/test_event_types.py checks) ----
# agent
AGENT_CERTIFICATE_REKEYED = "agent.certificate.rekeyed"
AGENT_CERTIFICATE_RENEWED = "agent.certificate.renewed"
AGENT_COMMAND_SENT = "agent.command.sent"
AGENT_ENROLMENT = "agent.enrolment"
AGENT_ENROLMENT_TOKEN_CREATED = "agent.enrolment_token.created"
AGENT_INVENTORY = "agent.inventory"
AGENT_MQTT_IGNORED = "agent.mqtt.ignored"
AGENT_PRESENCE_RESET_AT_START = "agent.presence.reset_at_start"
AGENT_REKEY_AUTHORISED = "agent.rekey.authorised"
AGENT_RELAY_CHANNEL_REFUSED = "agent.relay_channel_refused"
AGENT_RESCAN_REQUESTED = "agent.rescan_requested"
AGENT_RPC_DENIED = "agent.rpc.denied"
AGENT_STREAM_TAKEN_OVER = "agent.stream.taken_over"
# approval
APPROVAL_APPROVED = "approval.approved"
APPROVAL_DENIED = "approval.denied"
APPROVAL_REQUESTED = "approval.requested"
# audit
AUDIT_CHECKPOINT_FAILED = "audit.checkpoint.failed"  # audit/checkpoint_timer.py; details: error, code
AUDIT_OUTAGE = "audit.outage"  # reserved: an outage cannot be written while it lasts (see AUDIT_RECOVERED)
AUDIT_RECOVERED = "audit.recovered"  # audit/metered_log.py after an outage; details: started_at, ended_at, duration_s, refused, refused_types
AUDIT_WITNESS_FAILED = "audit.witness.failed"  # details: reason (refusal code, split_view, unreachable), witness
# auth
AUTH_API_TOKEN_CREATED = "auth.api_token_created"
AUTH_API_TOKEN_REVOKED = "auth.api_token_revoked"
AUTH_LOGOUT_EVERYWHERE = "auth.logout_everywhere"
AUTH_MFA_ENROL = "auth.mfa_enrol"
AUTH_MFA_STEP_UP = "auth.mfa_step_up"
AUTH_PASSWORD_RESET = "auth.password_reset"
AUTH_PASSWORD_RESET_LINK = "auth.password_reset_link"
# device
DEVICE_FIRMWARE_CHANGED = "device.firmware_changed"
DEVICE_IDENTITY_CHANGED = "device.identity_changed"
DEVICE_IDENTITY_MISMATCH = "device.identity_mismatch"
DEVICE_REPINNED = "device.repinned"
# dwa
DWA_AUDIT_EVENT_REJECTED = "dwa.audit_event_rejected"  # details: rejected_type, error, session_id (issue 21 F5)
DWA_CREDENTIAL_TYPED = "dwa.credential_typed"
DWA_CREDENTIALS_DECISION = "dwa.credentials_decision"
DWA_CREDENTIALS_DROPPED = "dwa.credentials_dropped"
DWA_DEVICE_SIGN_IN_FAILED = "dwa.device_sign_in_failed"
DWA_DEVICE_SIGNED_IN = "dwa.device_signed_in"
DWA_END_REQUESTED = "dwa.end_requested"
DWA_REQUEST = "dwa.request"
DWA_REQUEST_NOT_DELIVERED = "dwa.request_not_delivered"  # the record landed after its 503 (issue 21 F5)
DWA_SESSION_ENDED_BY_ACCESS_MODE = "dwa.session.ended_by_access_mode"
DWA_SESSION_EXTENDED = "dwa.session.extended"
DWA_SESSION_REJOIN_REFUSED = "dwa.session.rejoin_refused"
DWA_SESSION_REJOINED = "dwa.session.rejoined"
DWA_SOURCE_THROTTLED = "dwa.source_throttled"
DWA_TRANSFER_BLOCKED = "dwa.transfer_blocked"
DWA_WEBSOCKET = "dwa.websocket"
# fleet
FLEET_HISTORY_PARTITION_DROPPED = "fleet.history.partition_dropped"  # a month of readings history (PostgreSQL)
FLEET_HISTORY_PRUNED = "fleet.history.pruned"  # a dealer's readings older than its retention deleted
FLEET_HISTORY_RETENTION_SET = "fleet.history.retention_set"
# integration
INTEGRATION_WEBHOOK_ADDED = "integration.webhook.added"
INTEGRATION_WEBHOOK_DEAD_LETTER = "integration.webhook.dead_letter"
INTEGRATION_WEBHOOK_DISABLED = "integration.webhook.disabled"
INTEGRATION_WEBHOOK_ENABLED = "integration.webhook.enabled"
INTEGRATION_WEBHOOK_REDELIVERED = "integration.webhook.redelivered"
INTEGRATION_WEBHOOK_TESTED = "integration.webhook.tested"
# keys
KEYS_OVERLAP_ENDED = "keys.overlap_ended"  # retired keys of one use no longer trusted before their time
KEYS_ROTATED = "keys.rotated"
# policy
POLICY_CHANGED = "policy.changed"
# rbac
RBAC_INVITATION_ACCEPTED = "rbac.invitation_accepted"
RBAC_INVITED = "rbac.invited"
RBAC_ROLES_CHANGED = "rbac.roles_changed"
RBAC_USER_DISABLED = "rbac.user_disabled"
RBAC_USER_ENABLED = "rbac.user_enabled"
# relay
RELAY_AGENT_CONNECTED = "relay.agent.connected"
RELAY_AUTH_FAILED = "relay.auth.failed"
RELAY_CONNECTIONS_REFUSED = "relay.connections.refused"
RELAY_FORWARD_FAILED = "relay.forward.failed"
RELAY_FORWARD_OPENED = "relay.forward.opened"
RELAY_LIMIT_REACHED = "relay.limit.reached"
RELAY_REQUEST_REFUSED = "relay.request.refused"
RELAY_SESSION_ENDED = "relay.session.ended"
RELAY_TUNNEL_CLOSED = "relay.tunnel.closed"
# security_alert
SECURITY_ALERT_SUBSCRIPTION_ADDED = "security_alert.subscription.added"
SECURITY_ALERT_SUBSCRIPTION_REMOVED = "security_alert.subscription.removed"
# tenant
TENANT_CUSTOMER_ADDED = "tenant.customer_added"
TENANT_DEALER_ADDED = "tenant.dealer_added"
TENANT_REMOTE_ACCESS_CHANGED = "tenant.remote_access_changed"
TENANT_SITE_ADDED = "tenant.site_added"
# tunnel
TUNNEL_FAILED = "tunnel.failed"
# vault
VAULT_CREDENTIAL_ERASED = "vault.credential_erased"
VAULT_CREDENTIAL_REVEALED = "vault.credential_revealed"
VAULT_CREDENTIAL_ROTATED = "vault.credential_rotated"
VAULT_CREDENTIAL_SET = "vault.credential_set"
VAULT_REVEAL_REQUESTED = "vault.reveal_requested"
VAULT_USE_ALLOWED = "vault.use_allowed"
VAULT_USE_FORBIDDEN = "vault.use_forbidden"
