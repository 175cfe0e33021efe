"""Sign the technician in to the device with the session's stored credential, which the browser
never sees (issue 19, docs/credential-injection.md).

Only sessions whose route carries a ``DeviceLogin`` (the broker adds one when the policy allows
"use stored device credentials") are touched:

- any ``Authorization`` the browser sends is dropped;
- HTTP Basic/Digest: the device's 401 challenge is answered by the proxy (the request is sent
  again with credentials); later requests carry the answer at once (no extra round trip);
- form logins: a redirect to the device's login page makes the proxy sign in through the
  vendor's login profile (login page and its CSRF token, login post, success check) and send
  the original request again;
- the device's cookies stay in the session's cookie jar here and are added to requests; no
  ``Set-Cookie`` of the device reaches the browser;
- password fields the device pre-fills are blanked, and the secret itself (raw, HTML- or
  URL-encoded) is masked in any answer and in the device's WebSocket text frames, until the
  technician types the secret themselves (any request or frame of the session carrying it,
  ``gateway/proxy/typed_secret.py``): from then on the session's answers are not masked, so the
  mask never tells whether a guess echoed by the device was the password (audited once as
  ``dwa.credential_typed``, without the secret).

A failed sign-in (wrong stored password, no login form, a certificate that is not the pinned
one) is audited and not tried again in the session, so a device never locks its account because
of the proxy; the technician then sees the device's own login page.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import re
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from urllib.parse import quote, quote_plus, urlencode, urljoin, urlsplit

import httpx
from mitmproxy import http, websocket

from gateway.errors import DeviceLoginFailed
from gateway.proxy.addons.block_uploads import media_type
from gateway.proxy.decision import already_answered, is_generated, route_of
from gateway.proxy.device_client import DeviceAnswer, DeviceClient
from gateway.proxy.login_profiles import (
    LoginProfile,
    looks_like_login_form,
    profile_for,
    read_login_form,
)
from gateway.proxy.routes import RouteChange, RouteTable, SessionRoute
from gateway.proxy.typed_secret import request_carries, text_carries
from printgate.domain import AuditEventIn, Outcome, event_types
from printgate.domain.credentials import DeviceLogin, LoginKind
from printgate.interfaces import AuditSink
from printgate.logs import get_logger

log = get_logger(__name__)

SIGNED_IN_KEY = "printgate.device_signed_in"  # flow metadata: the account the proxy signed in as
MASK = b"********"
_PASSWORD_INPUT = re.compile(rb"<input\b[^>]*?\btype\s*=\s*[\"']?password\b[^>]*>", re.IGNORECASE)
_VALUE_ATTR = re.compile(rb"""\svalue\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>]*)""", re.IGNORECASE)
_HTML_TYPES = ("text/html", "application/xhtml+xml")


@dataclass(slots=True)
class _SessionLogin:
    """One session's sign-in state; lives in this proxy process only."""

    login: DeviceLogin
    client: DeviceClient
    secrets: tuple[bytes, ...]
    profile: LoginProfile
    jar: dict[str, str] = field(default_factory=dict)
    auth: httpx.Auth | None = None
    challenged: bool = False  # Basic/Digest: the device asked once, answers go with every request
    generation: int = 0  # sign-ins so far (requests sent before the latest one are answered again)
    failed: bool = False
    audited: bool = False
    typed: bool = False  # the technician sent the secret themselves: answers are no longer masked
    typed_here: bool = False  # ... seen in this session's own traffic (audited once)
    typed_audited: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def secret_forms(password: str) -> tuple[bytes, ...]:
    """The ways a device could echo a password: raw, HTML-escaped, URL-encoded (both styles)."""
    forms = {password, html.escape(password), html.escape(password, quote=False), quote(password, safe=""),
             quote_plus(password)}
    return tuple(sorted((f.encode() for f in forms if f), key=len, reverse=True))


def blank_password_inputs(content: bytes) -> bytes:
    """Every ``<input type=password value=...>`` without its value."""
    if b"assword" not in content and b"ASSWORD" not in content:
        return content
    return _PASSWORD_INPUT.sub(lambda m: _VALUE_ATTR.sub(b"", m.group(0)), content)


def mask_secrets(content: bytes, secrets: tuple[bytes, ...]) -> bytes:
    for s in secrets:
        if s in content:
            content = content.replace(s, MASK)
    return content


def _cookie_header(browser: str, jar: dict[str, str]) -> str:
    kept = []
    for part in browser.split(";"):
        name = part.split("=", 1)[0].strip()
        if name and name not in jar:
            kept.append(part.strip())
    return "; ".join(kept + [f"{k}={v}" for k, v in jar.items()])


class InjectCredentials:
    def __init__(self, routes: RouteTable, audit: AuditSink) -> None:
        self._audit = audit
        self._routes = routes
        self._sessions: dict[str, _SessionLogin] = {}
        self._closing: set[asyncio.Task[None]] = set()
        routes.on_remove(self._forget)
        routes.on_change(self._login_changed)

    # --- per-session state ----------------------------------------------------
    def _state(self, route: SessionRoute | None) -> _SessionLogin | None:
        if route is None or route.login is None:
            return None
        st = self._sessions.get(route.session_id)
        if st is None or st.login != route.login:
            login = route.login
            st = _SessionLogin(login, DeviceClient(route), secret_forms(login.password),
                               profile_for(login.profile, route.vendor))
            if login.kind is LoginKind.BASIC:
                st.auth = httpx.BasicAuth(login.account, login.password)
            elif login.kind is LoginKind.DIGEST:
                st.auth = httpx.DigestAuth(login.account, login.password)
            self._sessions[route.session_id] = st
        if route.credential_typed:  # typed on another worker or in an earlier session
            st.typed = True
        return st

    def _typed(self, st: _SessionLogin, route: SessionRoute) -> None:
        st.typed = st.typed_here = True
        self._routes.mark_credential_typed(route.session_id)

    def _login_changed(self, change: RouteChange) -> None:
        """A credential forbidden, erased or rotated while the session lives: the old secret, its
        sign-in and the device cookie jar go at once (the next request signs in anew, or not at all)."""
        st = self._sessions.get(change.session_id)
        if st is not None and change.route is not None and change.route.login != st.login:
            self._forget(change.session_id, "credential changed")

    def _forget(self, session_id: str, _reason: str) -> None:
        st = self._sessions.pop(session_id, None)
        if st is not None:
            st.jar.clear()
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # removed outside the event loop: the pool goes with the object
                return
            task = loop.create_task(st.client.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def done(self) -> None:
        self._sessions.clear()

    # --- request: the browser's Authorization out, the session's credentials in --------
    def request(self, flow: http.HTTPFlow) -> None:
        if already_answered(flow):
            return
        route = route_of(flow)
        st = self._state(route)
        if st is None or route is None:
            return
        if not st.typed_here and request_carries(flow.request, st.login.password):
            self._typed(st, route)
        flow.request.headers.pop("authorization", None)
        flow.metadata["printgate.login_generation"] = st.generation
        if st.failed:
            return
        if st.jar:
            flow.request.headers["cookie"] = _cookie_header(flow.request.headers.get("cookie", ""), st.jar)
        if st.auth is not None and st.challenged:
            header = self._auth_header(st, route, flow.request, None)
            if header:
                flow.request.headers["authorization"] = header

    def _auth_header(self, st: _SessionLogin, route: SessionRoute, request: http.Request,
                     challenge: DeviceAnswer | http.Response | None) -> str | None:
        """Basic: always the same; Digest: the next answer to the last challenge (or to ``challenge``)."""
        assert st.auth is not None
        probe = httpx.Request(request.method, route.device_origin.rstrip("/") + request.path)
        flow = st.auth.sync_auth_flow(probe)
        sent = next(flow)
        if challenge is not None and st.login.kind is LoginKind.DIGEST:
            headers = (challenge.headers.fields if isinstance(challenge, http.Response) else challenge.headers)
            try:
                sent = flow.send(httpx.Response(401, headers=list(headers), request=sent))
            except StopIteration:
                return None
        flow.close()
        return sent.headers.get("authorization")

    # --- response: answer challenges, sign in to forms, keep cookies, hide the secret -----
    async def response(self, flow: http.HTTPFlow) -> None:
        route = route_of(flow)
        st = self._state(route)
        resp = flow.response
        if st is None or route is None or resp is None or is_generated(flow):
            return
        try:
            if not st.failed:
                again = await self._sign_in_if_asked(flow, st, route, resp)
                if again is not None:
                    flow.response = resp = _as_response(again)
            if not st.failed and (st.challenged or st.jar):
                flow.metadata[SIGNED_IN_KEY] = st.login.account
        except (DeviceLoginFailed, httpx.HTTPError, OSError, TimeoutError) as exc:
            await self._failed(st, route, str(exc))
        except Exception as exc:  # httpcore errors and the like: fail closed, keep serving
            await self._failed(st, route, f"{type(exc).__name__}: {exc}")
        self._keep_cookies(st, resp)
        self._hide_secret(st, resp)
        await self._typed_audit(st, route, "http")

    # --- WebSocket: the same rule for text frames ------------------------------------
    async def websocket_message(self, flow: http.HTTPFlow) -> None:
        if flow.websocket is None or not flow.websocket.messages:
            return
        route = route_of(flow)
        st = self._state(route)
        if st is None or route is None:
            return
        message: websocket.WebSocketMessage = flow.websocket.messages[-1]
        if not message.is_text:
            return
        text = message.content.decode("utf-8", "replace")
        if message.from_client:
            if not st.typed_here and text_carries(text, st.login.password):
                self._typed(st, route)
                await self._typed_audit(st, route, "websocket")
            return
        if not st.typed:
            masked = mask_secrets(message.content, st.secrets)
            if masked is not message.content:
                message.content = masked

    async def _sign_in_if_asked(self, flow: http.HTTPFlow, st: _SessionLogin, route: SessionRoute,
                                resp: http.Response) -> DeviceAnswer | None:
        kind = st.login.kind
        if kind in (LoginKind.BASIC, LoginKind.DIGEST):
            challenges = resp.headers.get_all("www-authenticate")
            if resp.status_code != 401 or not any(c.lower().startswith(kind.value + " ") for c in challenges):
                return None
            header = self._auth_header(st, route, flow.request, resp)
            if not header:
                raise DeviceLoginFailed(f"the device's {kind.value} challenge cannot be answered")
            answer = await self._again(flow, st, authorization=header)
            if answer.status == 401:
                raise DeviceLoginFailed(f"the device refused the stored {kind.value} credential "
                                        f"of {st.login.account!r}")
            first = not st.challenged
            st.challenged = True
            if first:
                await self._signed_in(st, route)
            return answer
        location = resp.headers.get("location", "")
        if not (300 <= resp.status_code < 400 and location
                and st.profile.is_login_redirect(location, route.device_origin)):
            return None
        if urlsplit(flow.request.path).path == st.profile.login_path:
            return None  # the login page itself: the device's own business
        async with st.lock:
            if st.failed:
                return None
            if flow.metadata.get("printgate.login_generation", -1) == st.generation:
                await self._form_login(st, route, urljoin(route.device_origin + "/", location))
        return await self._again(flow, st)

    async def _form_login(self, st: _SessionLogin, route: SessionRoute, login_url: str) -> None:
        profile = st.profile
        page_url = login_url if profile.name == "generic" else route.device_origin.rstrip("/") + profile.login_path
        path = _path_of(page_url)
        base = [(b"host", urlsplit(route.device_origin).netloc.encode()), (b"user-agent", b"printgate")]
        page = await st.client.send("GET", path, base + self._jar_header(st))
        self._keep_cookies(st, page)
        if page.status != 200:
            raise DeviceLoginFailed(f"the device's login page {path} answered {page.status}")
        form = read_login_form(page.body.decode("utf-8", "replace"), profile, page_url)
        fields = {**form.fields, form.user_field: st.login.account, form.password_field: st.login.password}
        body = urlencode(fields).encode()
        headers = base + self._jar_header(st) + [(b"content-type", b"application/x-www-form-urlencoded"),
                                                 (b"origin", route.device_origin.encode()),
                                                 (b"referer", page_url.encode())]
        before = dict(st.jar)
        answer = await st.client.send("POST", _path_of(form.action), headers, body)
        self._keep_cookies(st, answer)
        refused = answer.status in (401, 403) or answer.status >= 500 or (
            answer.status == 200 and looks_like_login_form(answer.body.decode("utf-8", "replace")))
        if refused or st.jar == before:
            raise DeviceLoginFailed(f"the device refused the stored form login of {st.login.account!r} "
                                    f"(login profile {profile.name}, answer {answer.status})")
        st.generation += 1
        if st.generation == 1:
            await self._signed_in(st, route)

    def _jar_header(self, st: _SessionLogin) -> list[tuple[bytes, bytes]]:
        return [(b"cookie", _cookie_header("", st.jar).encode())] if st.jar else []

    async def _again(self, flow: http.HTTPFlow, st: _SessionLogin, *, authorization: str | None = None
                     ) -> DeviceAnswer:
        """The original request, sent again with the session's credentials or cookies."""
        req = flow.request
        headers = [(k, v) for k, v in req.headers.fields if k.lower() not in (b"authorization", b"cookie")]
        cookie = _cookie_header(req.headers.get("cookie", ""), st.jar)
        if cookie:
            headers.append((b"cookie", cookie.encode()))
        if authorization:
            headers.append((b"authorization", authorization.encode()))
        return await st.client.send(req.method, req.path, headers, req.raw_content or b"")

    def _keep_cookies(self, st: _SessionLogin, resp: http.Response | DeviceAnswer) -> None:
        """The device's cookies into the jar; none of them towards the browser."""
        if isinstance(resp, DeviceAnswer):
            values = [v.decode("latin-1") for v in resp.header(b"set-cookie")]
        else:
            values = resp.headers.get_all("set-cookie")
            if values:
                del resp.headers["set-cookie"]
        for value in values:
            try:
                parsed = SimpleCookie()
                parsed.load(value)
            except CookieError:
                continue
            for name, morsel in parsed.items():
                if morsel["max-age"] == "0" or morsel.value == "":
                    st.jar.pop(name, None)
                else:
                    st.jar[name] = morsel.value

    def _hide_secret(self, st: _SessionLogin, resp: http.Response) -> None:
        """Structural protections always; the secret's text masked until the technician typed it."""
        if media_type(resp.headers.get("content-type", "")) in _HTML_TYPES:
            content = resp.get_content(strict=False)
            if content:
                blanked = blank_password_inputs(content)
                if blanked is not content:
                    resp.set_content(blanked)
        if st.typed:
            return
        for name, value in list(resp.headers.items(multi=True)):
            if any(s.decode() in value for s in st.secrets):
                resp.headers[name] = mask_secrets(value.encode(), st.secrets).decode()
        content = resp.get_content(strict=False)
        if not content:
            return
        changed = mask_secrets(content, st.secrets)
        if changed is not content:
            resp.set_content(changed)

    # --- audit --------------------------------------------------------------------
    async def _signed_in(self, st: _SessionLogin, route: SessionRoute) -> None:
        if st.audited:
            return
        st.audited = True
        log.info("dwa.device_signed_in", session=route.session_id, kind=st.login.kind.value,
                 profile=st.profile.name)
        await self._append(AuditEventIn(
            type=event_types.DWA_DEVICE_SIGNED_IN, session_id=route.session_id,
            details={"kind": st.login.kind.value, "account": st.login.account, "scope": st.login.scope.value,
                     "credential_version": st.login.version, "profile": st.profile.name},
        ))

    async def _typed_audit(self, st: _SessionLogin, route: SessionRoute, via: str) -> None:
        """Once per session: the technician sent the stored secret (rule only, never the secret)."""
        if not st.typed_here or st.typed_audited:
            return
        st.typed_audited = True
        log.warning("dwa.credential_typed", session=route.session_id, via=via)
        await self._append(AuditEventIn(
            type=event_types.DWA_CREDENTIAL_TYPED, outcome=Outcome.SUCCESS,
            session_id=route.session_id,
            details={"rule": "credential.typed_by_technician", "via": via, "account": st.login.account,
                     "credential_version": st.login.version},
        ))

    async def _failed(self, st: _SessionLogin, route: SessionRoute, why: str) -> None:
        if st.failed:
            return
        st.failed = True
        st.jar.clear()
        log.warning("dwa.device_sign_in_failed", session=route.session_id, reason=why)
        await self._append(AuditEventIn(
            type=event_types.DWA_DEVICE_SIGN_IN_FAILED, outcome=Outcome.FAILURE, session_id=route.session_id,
            details={"kind": st.login.kind.value, "account": st.login.account, "reason": why[:300],
                     "credential_version": st.login.version},
        ))

    async def _append(self, event: AuditEventIn) -> None:
        """Queued with the request's own record when the sink groups commits (the proxy's does:
        the request's record is awaited before its answer goes out), else written now."""
        submit = getattr(self._audit, "submit", None)
        try:
            if callable(submit):
                with contextlib.suppress(RuntimeError):  # a writer not started: write through
                    submit(event)
                    return
            await self._audit.append(event)
        except Exception as exc:  # the audit store failing must not crash the proxy; operators see it
            log.error("dwa.audit_failed", error=str(exc), type=event.type)


def _path_of(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _as_response(answer: DeviceAnswer) -> http.Response:
    headers = [(k, v) for k, v in answer.headers if k.lower() not in (b"transfer-encoding", b"content-length")]
    resp = http.Response.make(answer.status, b"", http.Headers(headers))
    resp.raw_content = answer.body
    resp.headers["content-length"] = str(len(answer.body))
    return resp
