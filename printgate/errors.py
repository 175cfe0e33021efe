"""The error tree: every failure printgate reports is a PrintgateError.

Denials are data (a policy ``Decision``); failures are these exceptions. Each
carries a stable ``code`` and a message a user can act on.
"""

from __future__ import annotations


class PrintgateError(Exception):
    """Base of all printgate failures."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code


class ConfigError(PrintgateError):
    code = "config_invalid"


class NotFound(PrintgateError):
    code = "not_found"


class InvalidTransition(PrintgateError):
    code = "invalid_transition"


class AuthenticationFailed(PrintgateError):
    code = "authentication_failed"


class AccessDenied(PrintgateError):
    code = "access_denied"


class SessionGone(PrintgateError):
    """A DWA session is closed, expired or unknown."""

    code = "session_gone"


class TokenInvalid(PrintgateError):
    code = "token_invalid"


class AgentUnavailable(PrintgateError):
    code = "agent_unavailable"


class TunnelError(PrintgateError):
    code = "tunnel_failed"


class IdentityMismatch(PrintgateError):
    """A device no longer is the device recorded at discovery."""

    code = "identity_mismatch"


class FirewallError(PrintgateError):
    code = "firewall_failed"


class SnmpError(PrintgateError):
    code = "snmp_failed"


class TransferBlocked(PrintgateError):
    code = "transfer_blocked"


class AuditIntegrityError(PrintgateError):
    code = "audit_integrity"
