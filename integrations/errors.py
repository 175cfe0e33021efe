"""The outbound integrations' errors and their codes (see ``printgate.errors`` for the tree)."""

from __future__ import annotations

from printgate.errors import PrintgateError

SIGNATURE_INVALID = "signature_invalid"
SIGNATURE_EXPIRED = "signature_expired"
ENDPOINT_INVALID = "endpoint_invalid"
DELIVERY_FAILED = "delivery_failed"


class IntegrationError(PrintgateError):
    """An outbound delivery that could not be made (the message says to whom and why)."""

    code = DELIVERY_FAILED


class SignatureInvalid(PrintgateError):
    """A webhook signature header that is missing, malformed or does not match the body."""

    code = SIGNATURE_INVALID


class SignatureExpired(PrintgateError):
    """A correctly signed webhook whose timestamp is outside the replay window."""

    code = SIGNATURE_EXPIRED


class EndpointInvalid(PrintgateError):
    """A webhook endpoint address that printgate refuses to call (scheme, host, length)."""

    code = ENDPOINT_INVALID
