"""CSRF tokens: bound to the browser session (or, before login, to a random
pre-session cookie), derived with HMAC so nothing extra is stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets

PRE_COOKIE = "pg_pre"
FIELD = "csrf_token"


def token_for(secret_key: str, binding: str) -> str:
    return hmac.new(secret_key.encode(), f"csrf:{binding}".encode(), hashlib.sha256).hexdigest()


def check(secret_key: str, binding: str | None, presented: str | None) -> bool:
    if not binding or not presented:
        return False
    return hmac.compare_digest(token_for(secret_key, binding), presented)


def new_binding() -> str:
    return secrets.token_urlsafe(24)
