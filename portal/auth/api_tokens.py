"""API tokens for automation: ``pgt_<id>_<secret>``, stored as SHA-256, scoped."""

from __future__ import annotations

import secrets

from printgate.token_digest import token_digest

SCOPES = ("devices:read", "sessions:read", "sessions:write", "audit:read", "audit:witness", "fleet:read")
PREFIX = "pgt_"


def new_token() -> tuple[str, str, str]:
    """(token id, full token shown once, hash to store)."""
    token_id = secrets.token_hex(8)
    token = f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    return token_id, token, hash_token(token)


hash_token = token_digest  # the core's one token digest
