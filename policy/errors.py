"""The policy's errors and their codes (see ``printgate.errors`` for the tree)."""

from __future__ import annotations

from printgate.errors import ConfigError

POLICY_INVALID = "policy_invalid"


class RuleSetInvalid(ConfigError):
    """A dealer's rule set that does not parse or validate."""

    code = POLICY_INVALID
