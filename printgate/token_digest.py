"""The one digest printgate stores in place of a bearer secret (issue 16: was copied in four places).

API tokens, portal session cookies, agent enrolment tokens and the proxy's launch tokens and
session cookies are random and long, so an unsalted SHA-256 hex digest is enough to look them
up without keeping the secret itself; every part uses this function so the stored values agree.
"""

from __future__ import annotations

import hashlib


def token_digest(token: str) -> str:
    """SHA-256 of the UTF-8 token, lower-case hex (64 characters)."""
    return hashlib.sha256(token.encode()).hexdigest()
