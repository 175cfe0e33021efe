"""The error tree of the core: every failure printgate reports is a PrintgateError.

Denials are data (a policy ``Decision``); failures are these exceptions. Each
carries a stable ``code`` (the named constants below: they appear in logs,
audit details and API answers) and a message a user can act on.

One errors module per layer: this one (core), ``policy.errors``,
``audit.errors``, ``fleet.errors``, ``integrations.errors``, ``alerting.errors``,
``gateway.errors``, ``portal.errors``, ``agent.errors``.
An error code used anywhere is a constant of one of them.
"""

from __future__ import annotations

ERROR = "error"
CONFIG_INVALID = "config_invalid"
NOT_FOUND = "not_found"
INVALID_TRANSITION = "invalid_transition"
AUTHENTICATION_FAILED = "authentication_failed"
ACCESS_DENIED = "access_denied"
SESSION_GONE = "session_gone"
TOKEN_INVALID = "token_invalid"
AGENT_UNAVAILABLE = "agent_unavailable"
TUNNEL_FAILED = "tunnel_failed"
IDENTITY_MISMATCH = "identity_mismatch"
FIREWALL_FAILED = "firewall_failed"
SNMP_FAILED = "snmp_failed"
TRANSFER_BLOCKED = "transfer_blocked"
AUDIT_INTEGRITY = "audit_integrity"
READINGS_PAYLOAD_INVALID = "readings_payload_invalid"
COMMAND_SIGNATURE_INVALID = "command_signature_invalid"
VAULT_FAILED = "vault_failed"
CREDENTIAL_INVALID = "credential_invalid"
SESSION_REASON_INVALID = "session_reason_invalid"
CUSTOMER_NAME_TAKEN = "customer_name_taken"
EMAIL_INVALID = "email_invalid"
DATABASE_UNREACHABLE = "database_unreachable"


class PrintgateError(Exception):
    """Base of all printgate failures."""

    code = ERROR

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code


class ConfigError(PrintgateError):
    code = CONFIG_INVALID


class DatabaseUnreachable(PrintgateError):
    """The database did not answer within the start-up wait (``database_start_wait_seconds``)."""

    code = DATABASE_UNREACHABLE


class NotFound(PrintgateError):
    code = NOT_FOUND


class InvalidTransition(PrintgateError):
    code = INVALID_TRANSITION


class NodeStillLive(InvalidTransition):
    """A live gateway node's row cannot be forgotten: it would register again at its next renewal anyway."""

    def __init__(self, node_id: str, state: str, lease_until: str) -> None:
        super().__init__(f"node {node_id} is live ({state}, lease until {lease_until}): stop it first "
                         "(SIGTERM drains it), then forget it")


class AuthenticationFailed(PrintgateError):
    code = AUTHENTICATION_FAILED


class AccessDenied(PrintgateError):
    code = ACCESS_DENIED


class SessionGone(PrintgateError):
    """A DWA session is closed, expired or unknown."""

    code = SESSION_GONE


class TokenInvalid(PrintgateError):
    code = TOKEN_INVALID


class AgentUnavailable(PrintgateError):
    code = AGENT_UNAVAILABLE


class TunnelError(PrintgateError):
    code = TUNNEL_FAILED


class IdentityMismatch(PrintgateError):
    """A device no longer is the device recorded at discovery."""

    code = IDENTITY_MISMATCH


class FirewallError(PrintgateError):
    code = FIREWALL_FAILED


class SnmpError(PrintgateError):
    code = SNMP_FAILED


class TransferBlocked(PrintgateError):
    code = TRANSFER_BLOCKED


class AuditIntegrityError(PrintgateError):
    code = AUDIT_INTEGRITY


class ReadingsPayloadInvalid(PrintgateError):
    """An uploaded readings batch is not what ``Reading.to_dict`` produces."""

    code = READINGS_PAYLOAD_INVALID


class CommandSignatureInvalid(PrintgateError):
    """A command to an agent whose signature does not verify."""

    code = COMMAND_SIGNATURE_INVALID


class VaultError(PrintgateError):
    """The credential vault cannot seal or open a secret (master key missing, unreadable,
    too open, or a ciphertext that does not decrypt)."""

    code = VAULT_FAILED


class CredentialInvalid(PrintgateError):
    """A device credential to store is not acceptable (empty, too long, unknown kind)."""

    code = CREDENTIAL_INVALID


class SessionReasonInvalid(PrintgateError):
    """The documented reason of a remote session is not acceptable (empty, too long, bad ticket id)."""

    code = SESSION_REASON_INVALID


class CustomerNameTaken(PrintgateError):
    """A dealer already has a customer of this name (case and surrounding blanks ignored)."""

    code = CUSTOMER_NAME_TAKEN


class EmailInvalid(PrintgateError):
    """An address a user would be invited with is not one the sign-in form accepts (``printgate.domain.email``)."""

    code = EMAIL_INVALID
