"""The agent's errors and their codes (see ``printgate.errors`` for the tree).

The codes also travel to the gateway in ``CommandResult.error_code``.
"""

from __future__ import annotations

from printgate.errors import AgentUnavailable, PrintgateError

ENROLMENT_FAILED = "enrolment_failed"
UPDATE_REJECTED = "update_rejected"
COMMAND_REJECTED = "command_rejected"
COMMAND_FORGED = "command_forged"
COMMAND_WRONG_AGENT = "command_wrong_agent"
COMMAND_MALFORMED = "command_malformed"
COMMAND_EXPIRED = "command_expired"
COMMAND_REPLAYED = "command_replayed"
TLS_NO_CERTIFICATE = "tls_no_certificate"
RELAY_HOST_KEY_MISMATCH = "relay_host_key_mismatch"
RELAY_AUTH_REFUSED = "relay_auth_refused"
SNMP_TIMEOUT = "snmp_timeout"
SNMP_AUTH_FAILED = "snmp_auth_failed"
SNMP_ERROR_STATUS = "snmp_error_status"
SNMP_MALFORMED = "snmp_malformed"
SNMP_UNREACHABLE = "snmp_unreachable"
SNMP_CONFIG = "snmp_config"
CLOUD_BUSY = "cloud_busy"
BATCH_NOT_ACCEPTED = "batch_not_accepted"


class CloudBusy(AgentUnavailable):
    """The cloud's ingest is behind: the batch stays queued and is sent again after ``retry_after_s``."""

    code = CLOUD_BUSY

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class BatchNotAccepted(AgentUnavailable):
    """The cloud answered a readings batch with an error that retrying may not cure:
    ``permanent`` (INVALID_ARGUMENT, too large for the transport) it never will; otherwise
    (INTERNAL, UNKNOWN) a few attempts are made before the queue sets the batch aside."""

    code = BATCH_NOT_ACCEPTED

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class EnrolmentFailed(PrintgateError):
    code = ENROLMENT_FAILED


class CommandRejected(PrintgateError):
    code = COMMAND_REJECTED


class UpdateRejected(PrintgateError):
    code = UPDATE_REJECTED


DEAD_LETTER_UNKNOWN = "dead_letter_unknown"


class DeadLetterUnknown(PrintgateError):
    """``printgate agent dead-letters``: no queue file there, or no (or more than one) batch by that id."""

    code = DEAD_LETTER_UNKNOWN
