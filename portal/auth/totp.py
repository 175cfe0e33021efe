"""TOTP (RFC 6238 via pyotp): ±1 step, replay refused by the last accepted step;
enrolment QR code (segno SVG) and one-use recovery codes."""

from __future__ import annotations

import hashlib
import hmac
import io
import secrets
from datetime import datetime

import pyotp
import segno

STEP_SECONDS = 30
WINDOW = 1  # steps of clock skew accepted on either side


def new_secret() -> str:
    return pyotp.random_base32()


def matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step (within ±WINDOW of ``now``) whose code equals ``code``."""
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret, interval=STEP_SECONDS)
    current = int(now.timestamp()) // STEP_SECONDS
    for step in range(current - WINDOW, current + WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def provisioning_uri(secret: str, email: str, issuer: str = "printgate") -> str:
    return pyotp.TOTP(secret, interval=STEP_SECONDS).provisioning_uri(name=email, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="svg", scale=4, xmldecl=False, svgns=True)
    return out.getvalue().decode()


def new_recovery_codes(n: int = 10) -> list[str]:
    return [f"{secrets.token_hex(4)}-{secrets.token_hex(4)}" for _ in range(n)]


def hash_recovery_code(code: str) -> str:
    """Recovery codes are 64 random bits: a plain SHA-256 is enough to store them."""
    return hashlib.sha256(code.strip().lower().encode()).hexdigest()
