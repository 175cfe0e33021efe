"""The audit trail's errors and their codes (see ``printgate.errors`` for the tree)."""

from __future__ import annotations

from printgate.errors import AuditIntegrityError, PrintgateError

SYSLOG_FAILED = "syslog_failed"
AUDIT_VALUE_INVALID = "audit_value_invalid"
# a witness and the gateway's audit API (audit.witness)
GATEWAY_UNREACHABLE = "unreachable"
GATEWAY_UNAUTHORISED = "unauthorised"
GATEWAY_MALFORMED = "malformed"
GATEWAY_HTTP_ERROR = "http_error"
COSIGNATURE_NOT_STORED = "not_stored"
WITNESS_WRONG_STATE = "wrong_state"
LOG_FORGED = "forged"
LOG_TRUNCATED = "truncated"
LOG_FORKED = "forked"
AUDIT_LOG_CLOSED = "audit_log_closed"


class SyslogError(PrintgateError):
    code = SYSLOG_FAILED


class NotCanonicalisable(PrintgateError):
    """An audit value that JSON (RFC 8785) cannot represent."""

    code = AUDIT_VALUE_INVALID


class AuditLogClosed(PrintgateError):
    """An append after the audit log was closed (the process is shutting down): refused, nothing
    written; the caller's record is not in the trail."""

    code = AUDIT_LOG_CLOSED


class GatewayUnreachable(PrintgateError):
    """The gateway's API did not answer usefully (network, auth, server error)."""

    code = GATEWAY_UNREACHABLE


class WitnessRefused(AuditIntegrityError):
    """The gateway's log is not one the witness will cosign (``code`` says why)."""
