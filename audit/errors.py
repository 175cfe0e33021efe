"""The audit trail's errors and their codes (see ``printgate.errors`` for the tree)."""

from __future__ import annotations

from printgate.errors import PrintgateError

SYSLOG_FAILED = "syslog_failed"
AUDIT_VALUE_INVALID = "audit_value_invalid"


class SyslogError(PrintgateError):
    code = SYSLOG_FAILED


class NotCanonicalisable(PrintgateError):
    """An audit value that JSON (RFC 8785) cannot represent."""

    code = AUDIT_VALUE_INVALID
