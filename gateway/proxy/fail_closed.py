"""Fail closed: an exception in any addon ends the flow with a refusal, never lets it through.

mitmproxy logs an exception raised by an addon hook and goes on with the next
addon, so a failing check would let the request reach the device unchecked.
``fail_closed(addon, audit)`` wraps every flow hook of an addon: on an
exception the flow is answered with the proxy's error page (request and
response hooks), a WebSocket message is dropped and the connection closed, a
TLS handshake towards the device is abandoned, a new client connection is
refused. The refusal is audited: by the audit addon for answered flows
(``proxy.addon_failed`` decision), directly for the other cases.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from mitmproxy import connection, http, tls

from gateway.proxy import pages
from gateway.proxy.decision import DECISION_KEY, FlowDecision, route_of
from printgate.domain import AuditEventIn, Outcome, event_types
from printgate.interfaces import AuditSink
from printgate.logs import get_logger

log = get_logger(__name__)

RULE = "proxy.addon_failed"
# hooks of a flow or a connection; lifecycle hooks (load, configure, running, done) fail loudly
_FLOW_HOOKS = (
    "requestheaders", "request", "responseheaders", "response", "error", "http_connect",
    "websocket_start", "websocket_message", "websocket_end",
    "client_connected", "client_disconnected", "server_connect",
    "tls_clienthello", "tls_start_client", "tls_start_server",
)


def _name(addon: object) -> str:
    return str(getattr(addon, "name", type(addon).__name__.lower()))


class FailClosed:
    """One addon, its flow hooks guarded (``inner`` is the wrapped addon)."""

    def __init__(self, inner: object, audit: AuditSink) -> None:
        self.inner = inner
        self.name = _name(inner)  # mitmproxy keys addons by name
        self._audit = audit
        for hook in _FLOW_HOOKS:
            func = getattr(inner, hook, None)
            if callable(func):
                setattr(self, hook, self._guard(hook, func))

    def _guard(self, hook: str, func: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def guarded_async(*args: Any) -> None:
                try:
                    await func(*args)
                except Exception as exc:  # the whole point: no exception lets a flow through
                    await self._failed(hook, args[0] if args else None, exc)

            return guarded_async

        # a plain hook stays plain (no coroutine per call on the hot path); on an exception it
        # returns the handling coroutine, which mitmproxy awaits like any async hook's result
        @functools.wraps(func)
        def guarded(*args: Any) -> Any:
            try:
                result = func(*args)
            except Exception as exc:
                return self._failed(hook, args[0] if args else None, exc)
            if result is not None and inspect.isawaitable(result):  # most hooks return None: no abc check
                return self._await_guarded(hook, args, result)
            return result

        return guarded

    async def _await_guarded(self, hook: str, args: tuple[Any, ...], result: Awaitable[Any]) -> None:
        try:
            await result
        except Exception as exc:
            await self._failed(hook, args[0] if args else None, exc)

    async def _failed(self, hook: str, subject: object, exc: Exception) -> None:
        what = f"{self.name}.{hook} failed: {type(exc).__name__}"
        log.error("dwa.addon_failed", addon=self.name, hook=hook, error=repr(exc))
        decision = FlowDecision(True, RULE, what, "session")
        if isinstance(subject, http.HTTPFlow):
            if hook in ("websocket_message", "websocket_start") and subject.websocket is not None:
                if subject.websocket.messages:
                    subject.websocket.messages[-1].drop()
                subject.metadata[DECISION_KEY] = decision
                subject.kill()
                await self._record(subject, decision)
                return
            if hook in ("error", "websocket_end") or subject.error is not None:
                await self._record(subject, decision)
                return
            # request or response phase: the proxy's error page replaces whatever was there;
            # the audit addon (last) records it with the decision
            pages.internal_error(subject, decision)
            if hook == "responseheaders":  # the device's body is still coming: stream it away
                assert subject.response is not None
                subject.response.stream = _instead_of_body(subject.response.content or b"")
            return
        if isinstance(subject, tls.TlsData):
            subject.ssl_conn = None  # no handshake: the connection is closed
            subject.conn.error = what
        elif isinstance(subject, connection.Client):
            subject.error = what
        elif isinstance(subject, object) and hasattr(subject, "server"):
            subject.server.error = what  # server_connect: do not connect
        await self._record(None, decision)

    async def _record(self, flow: http.HTTPFlow | None, decision: FlowDecision) -> None:
        route = route_of(flow) if flow is not None else None
        details: dict[str, object] = {"rule": decision.rule, "reason": decision.reason, "blocked": True}
        if flow is not None:
            details |= {"method": flow.request.method, "path": flow.request.path.split("?", 1)[0]}
        try:
            await self._audit.append(AuditEventIn(
                type=event_types.DWA_REQUEST, outcome=Outcome.BLOCKED,
                session_id=route.session_id if route else None, details=details,
            ))
        except Exception as exc:  # the audit store failing is logged by the caller's sink too
            log.error("dwa.audit_failed", error=str(exc), type=event_types.DWA_REQUEST)


def _instead_of_body(page: bytes) -> Callable[[bytes], bytes]:
    """A response stream that drops the device's body and sends ``page`` at its end."""
    sent = False

    def stream(data: bytes) -> bytes:
        nonlocal sent
        if data or sent:
            return b""
        sent = True
        return page

    return stream


def fail_closed(addons: list[object], audit: AuditSink) -> list[object]:
    """Every addon of ``addons`` wrapped (order kept)."""
    return [FailClosed(a, audit) for a in addons]


class Pipeline:
    """The guarded addons as ONE mitmproxy addon: each flow hook calls, in order, only the addons
    that have it.

    mitmproxy dispatches every event (and the ``update`` event after each flow event) to every
    addon of its chain through a generator, a context manager and a coroutine per addon, whether
    the addon has the hook or not: with twenty addons that was a few hundred calls per proxied
    request. Here the list per hook is built once, plain hooks are called plainly and an
    awaitable result is awaited before the next addon runs, as mitmproxy does. An exception that
    escapes a guarded hook (the fail-closed handling itself failed) is logged and the next addon
    still runs, as in mitmproxy's own dispatch (the audit addon, last, always sees the flow)."""

    name = "printgate-pipeline"

    def __init__(self, addons: list[object]) -> None:
        self.addons_in_order = list(addons)
        for hook in _FLOW_HOOKS:
            funcs = [f for f in (getattr(a, hook, None) for a in self.addons_in_order) if callable(f)]
            if funcs:
                setattr(self, hook, _chain(hook, funcs))


def _chain(hook: str, funcs: list[Callable[..., Any]]) -> Callable[..., Any]:
    async def rest(pending: Awaitable[Any], index: int, args: tuple[Any, ...]) -> None:
        try:
            await pending
        except Exception as exc:
            log.error("dwa.hook_failed", hook=hook, error=repr(exc))
        for func in funcs[index:]:
            try:
                result = func(*args)
                if result is not None and inspect.isawaitable(result):
                    await result
            except Exception as exc:
                log.error("dwa.hook_failed", hook=hook, error=repr(exc))

    def run(*args: Any) -> Any:
        for index, func in enumerate(funcs):
            try:
                result = func(*args)
            except Exception as exc:
                log.error("dwa.hook_failed", hook=hook, error=repr(exc))
                continue
            if result is not None and inspect.isawaitable(result):
                return rest(result, index + 1, args)
        return None

    return run


def unwrap(addon: object) -> object:
    return addon.inner if isinstance(addon, FailClosed) else addon
