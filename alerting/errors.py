"""Security alerting's errors and their codes (see ``printgate.errors`` for the tree)."""

from __future__ import annotations

from printgate.errors import PrintgateError

ALERT_DELIVERY_FAILED = "alert_delivery_failed"
SUBSCRIPTION_INVALID = "subscription_invalid"


class DeliveryFailed(PrintgateError):
    """One alert could not be handed to one channel (it is retried, then kept as dead)."""

    code = ALERT_DELIVERY_FAILED


class SubscriptionInvalid(PrintgateError):
    """A security-alert subscription that cannot work (unknown channel, bad target, ...)."""

    code = SUBSCRIPTION_INVALID
