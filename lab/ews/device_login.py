"""How a simulated EWS guards its admin pages: form login (optionally with a one-use CSRF
token), HTTP Basic or HTTP Digest (RFC 7616, MD5, qop=auth), and a lockout after failed
logins in a row, as real devices have. The kind per printer comes from ``lab.catalog``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from urllib.request import parse_http_list, parse_keqv_list

from aiohttp import web

from lab.catalog import LabLogin

USERNAME = "admin"
PASSWORD = "admin-pass"  # lab only
SESSION_COOKIE = "ewssid"
LOCKOUT_AFTER = 5  # failed logins in a row
LOCKOUT_SECONDS = 60.0
_KEEP = 256  # outstanding CSRF tokens / digest nonces kept (oldest dropped)


@dataclass
class LoginState:
    """One device's accounts, sessions, tokens and lockout."""

    login: LabLogin = field(default_factory=LabLogin)
    username: str = USERNAME
    password: str = PASSWORD
    sessions: set[str] = field(default_factory=set)
    csrf_tokens: OrderedDict[str, None] = field(default_factory=OrderedDict)
    nonces: OrderedDict[str, None] = field(default_factory=OrderedDict)
    failed_in_a_row: int = 0
    locked_until: float = 0.0
    logins: int = 0  # successful logins (form posts, accepted Basic/Digest headers)
    failures: int = 0

    def locked(self) -> bool:
        return time.monotonic() < self.locked_until

    def failed(self) -> None:
        self.failures += 1
        self.failed_in_a_row += 1
        if self.failed_in_a_row >= LOCKOUT_AFTER:
            self.locked_until = time.monotonic() + LOCKOUT_SECONDS
            self.failed_in_a_row = 0

    def succeeded(self) -> None:
        self.logins += 1
        self.failed_in_a_row = 0

    def unlock(self) -> None:
        self.locked_until = 0.0
        self.failed_in_a_row = 0

    def issue(self, store: OrderedDict[str, None]) -> str:
        token = secrets.token_urlsafe(18)
        store[token] = None
        while len(store) > _KEEP:
            store.popitem(last=False)
        return token


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _challenge(state: LoginState, *, stale: bool = False) -> str:
    realm = state.login.realm
    if state.login.kind == "basic":
        return f'Basic realm="{realm}", charset="UTF-8"'
    nonce = state.issue(state.nonces)
    return f'Digest realm="{realm}", qop="auth", algorithm=MD5, nonce="{nonce}", opaque="lab"' + (
        ", stale=true" if stale else ""
    )


def _basic_ok(state: LoginState, header: str) -> bool | None:
    """True/False for a well-formed Basic header with right/wrong credentials, None otherwise."""
    try:
        user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return secrets.compare_digest(user, state.username) and secrets.compare_digest(password, state.password)


def _digest_ok(state: LoginState, header: str, method: str, uri: str) -> bool | None:
    """True/False for right/wrong credentials, None for a malformed or stale header."""
    params = parse_keqv_list(parse_http_list(header[7:]))
    needed = ("username", "realm", "nonce", "uri", "response", "qop", "nc", "cnonce")
    if any(k not in params for k in needed) or params["qop"] != "auth" or params["uri"] != uri:
        return None
    if params["nonce"] not in state.nonces:
        return None
    ha1 = _md5(f"{state.username}:{state.login.realm}:{state.password}")
    ha2 = _md5(f"{method}:{uri}")
    expected = _md5(f"{ha1}:{params['nonce']}:{params['nc']}:{params['cnonce']}:auth:{ha2}")
    return params["username"] == state.username and secrets.compare_digest(params["response"], expected)


def locked_page() -> web.Response:
    return web.Response(
        status=403, content_type="text/html",
        text="<!doctype html><html><body><h1>Account locked</h1>"
             "<p id=locked>Too many failed logins. Try again later.</p></body></html>",
    )


def admin_allowed(request: web.Request, state: LoginState, origin: str) -> web.StreamResponse | None:
    """None when the request may see an admin page; else the device's answer (a redirect to
    its login page, an HTTP challenge, or the lockout page)."""
    kind = state.login.kind
    if kind == "form":
        if request.cookies.get(SESSION_COOKIE, "") in state.sessions:
            return None
        return web.HTTPFound(origin + state.login.path)
    header = request.headers.get("Authorization", "")
    scheme = "Basic " if kind == "basic" else "Digest "
    if not header.lower().startswith(scheme.lower()):
        return web.Response(status=401, headers={"WWW-Authenticate": _challenge(state)}, text="Authorization required")
    if state.locked():
        return locked_page()
    ok = _basic_ok(state, header) if kind == "basic" else _digest_ok(state, header, request.method, request.path_qs)
    if ok is None:
        return web.Response(status=401, headers={"WWW-Authenticate": _challenge(state, stale=kind == "digest")},
                            text="Authorization required")
    if not ok:
        state.failed()
        if state.locked():
            return locked_page()
        return web.Response(status=401, headers={"WWW-Authenticate": _challenge(state)}, text="Wrong credentials")
    state.succeeded()
    return None


def login_form_body(state: LoginState, origin: str, *, error: str = "") -> str:
    lg = state.login
    token = ""
    if lg.csrf_field:
        token = f"<input type=hidden name={lg.csrf_field} value='{state.issue(state.csrf_tokens)}'>"
    err = f"<p id=error>{html.escape(error)}</p>" if error else ""
    return (
        f"{err}<form id=login method=post action='{origin}{lg.path}'>{token}"
        f"<input name={lg.user_field} id=username><input name={lg.password_field} id=password type=password>"
        "<button type=submit id=login-submit>Log in</button></form>"
    )


def form_login(state: LoginState, form: dict[str, str]) -> tuple[str, str | None]:
    """Check a posted login form: (outcome, session id) with outcome one of ``ok``,
    ``csrf`` (missing or used token: not counted as a failure), ``locked``, ``wrong``."""
    lg = state.login
    if lg.csrf_field:
        token = form.get(lg.csrf_field, "")
        if token not in state.csrf_tokens:
            return "csrf", None
        del state.csrf_tokens[token]
    if state.locked():
        return "locked", None
    user, password = form.get(lg.user_field, ""), form.get(lg.password_field, "")
    if not (secrets.compare_digest(user, state.username) and secrets.compare_digest(password, state.password)):
        state.failed()
        return ("locked" if state.locked() else "wrong"), None
    state.succeeded()
    sid = secrets.token_hex(16)
    state.sessions.add(sid)
    return "ok", sid

