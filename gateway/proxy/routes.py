"""Which session host name leads to which device, plus launch tokens and browser cookies.

The table is the proxy's only state about sessions. A removed session leaves a
tombstone so its host name shows a clear "session ended" page instead of a
generic error. Secrets (launch tokens, cookies) are stored only as SHA-256.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from gateway.attribution import Attribution
from printgate.domain.credentials import DeviceLogin
from printgate.errors import NotFound, TokenInvalid
from printgate.token_digest import token_digest

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class SessionRoute:
    """One DWA session as the proxy sees it."""

    session_id: str
    host: str  # e.g. s-<id>.dwa.localhost (no port)
    upstream_host: str  # where the tunnel delivers the device (loopback port of the relay)
    upstream_port: int
    device_origin: str  # e.g. http://127.0.20.15:8081, the address the device's pages use
    device_scheme: str  # "http" | "https"
    pinned_fingerprint: str | None  # sha256 hex of the device certificate (DER), https only
    expires_at: datetime
    idle_timeout_s: int
    device_label: str
    customer_name: str
    vendor: str = ""  # the device's vendor as discovered (selects the vendor profile's budgets)
    # whose session this is: stamped on every audit record of the session (tenant auditors)
    dealer_id: str | None = None
    customer_id: str | None = None
    site_id: str | None = None
    device_id: str | None = None
    user_id: str | None = None
    # the stored credential the proxy signs in with (policy allowed it), in memory for the
    # session's lifetime only (gateway/proxy/addons/inject_credentials.py); never shown
    login: DeviceLogin | None = field(default=None, repr=False)
    # the technician sent the stored secret themselves (in this or an earlier session of theirs on
    # the device): the proxy stops masking it, so the mask never confirms a guess (issue 19)
    credential_typed: bool = False
    # why the session was opened (issue 20), for the banner; when its alert cleared ("HH:MM" UTC)
    reason: str = ""
    reason_cleared_at: str = ""
    # the gateway node serving the session is draining (rolling upgrade): the broker ends it then
    # ("HH:MM" UTC for the banner, and the epoch second its countdown runs to)
    maintenance_at: str = ""
    maintenance_epoch: int = 0

    def attribution(self) -> Attribution:
        return Attribution(self.dealer_id, self.customer_id, self.site_id, self.device_id, self.user_id)


@dataclass(frozen=True, slots=True)
class Tombstone:
    """What is left of a removed session: its host and why it ended."""

    session_id: str
    host: str
    reason: str
    ended_at: datetime


@dataclass(frozen=True, slots=True)
class RouteChange:
    """What changed in a table: ``add``/``extend`` carry the route, ``remove`` the reason,
    ``cookie`` the SHA-256 of a browser cookie just issued for the session."""

    kind: str  # "add" | "extend" | "remove" | "cookie"
    session_id: str
    route: SessionRoute | None = None
    reason: str = ""
    cookie_digest: str = ""


@dataclass(slots=True)
class _LaunchToken:
    session_id: str
    expires_at: datetime


@dataclass(slots=True)
class _Live:
    route: SessionRoute
    last_activity: datetime
    cookie_hashes: set[str] = field(default_factory=set)


def _typed_key(route: SessionRoute) -> tuple[object, ...]:
    login = route.login
    return (route.user_id, route.device_id, route.device_origin, route.upstream_host, route.upstream_port,
            login.account if login else None, login.version if login else None,
            login.scope.value if login else None)


_digest = token_digest  # the core's one token digest


cookie_digest = _digest


class RouteTable:
    """Session routes keyed by host name; launch tokens; cookies bound to sessions."""

    def __init__(
        self,
        *,
        launch_token_ttl_s: int = 60,
        tombstone_ttl_s: int = 3600,
        clock: Clock = utc_now,
    ) -> None:
        self._ttl = timedelta(seconds=launch_token_ttl_s)
        self._tombstone_ttl = timedelta(seconds=tombstone_ttl_s)
        self._clock = clock
        self._live: dict[str, _Live] = {}  # session_id -> live state
        self._hosts: dict[str, str] = {}  # host -> session_id
        self._tombstones: dict[str, Tombstone] = {}  # host -> tombstone
        self._tokens: dict[str, _LaunchToken] = {}  # sha256(token) -> token
        self._removal_listeners: list[Callable[[str, str], None]] = []
        self._change_listeners: list[Callable[[RouteChange], None]] = []
        self._typed: set[tuple[object, ...]] = set()  # (user, device, credential) that typed the secret

    # --- lifecycle -----------------------------------------------------
    def add(self, route: SessionRoute) -> None:
        host = route.host.lower()
        if host in self._hosts and self._hosts[host] != route.session_id:
            raise TokenInvalid(f"host {host} already belongs to another live session")
        live = self._live.get(route.session_id)
        if route.user_id and not route.credential_typed and _typed_key(route) in self._typed:
            route = replace(route, credential_typed=True)  # this technician typed it in an earlier session
        if live is not None and live.route.host == host:  # an update (e.g. its login dropped):
            live.route = replace(route, host=host)  # the browser's cookies and activity stay
        else:
            self._live[route.session_id] = _Live(replace(route, host=host), self._clock())
        self._hosts[host] = route.session_id
        self._tombstones.pop(host, None)
        self._changed(RouteChange("add", route.session_id, self._live[route.session_id].route))

    def remove(self, session_id: str, reason: str) -> None:
        live = self._live.pop(session_id, None)
        if live is None:
            return
        self._hosts.pop(live.route.host, None)
        self._tombstones[live.route.host] = Tombstone(
            session_id, live.route.host, reason, self._clock()
        )
        for key in [k for k, t in self._tokens.items() if t.session_id == session_id]:
            del self._tokens[key]
        for listener in list(self._removal_listeners):
            listener(session_id, reason)
        self._changed(RouteChange("remove", session_id, reason=reason))

    def extend(self, session_id: str, new_expires_at: datetime) -> SessionRoute:
        live = self._live.get(session_id)
        if live is None:
            raise NotFound(f"session {session_id} is not live on this proxy; cannot extend it")
        live.route = replace(live.route, expires_at=new_expires_at)
        self._changed(RouteChange("extend", session_id, live.route))
        return live.route

    def drop_logins(self, customer_id: str) -> list[str]:
        """The live sessions of ``customer_id`` sign in to their device no more (a stored credential
        was forbidden or erased): each route is added again without its login, so every worker
        forgets the secret, its sign-in and its device cookie jar at once. The sessions changed."""
        dropped = []
        for sid, live in list(self._live.items()):
            if live.route.customer_id == customer_id and live.route.login is not None:
                live.route = replace(live.route, login=None)
                self._changed(RouteChange("add", sid, live.route))
                dropped.append(sid)
        return dropped

    def mark_credential_typed(self, session_id: str) -> None:
        """The technician of the session sent its stored secret: every worker stops masking it for
        them, in this session and their later ones on the device with the same credential version."""
        live = self._live.get(session_id)
        if live is None or live.route.login is None:
            return
        if live.route.user_id:  # remembered for the technician's later sessions
            self._typed.add(_typed_key(live.route))
        if not live.route.credential_typed:
            live.route = replace(live.route, credential_typed=True)
            self._changed(RouteChange("add", session_id, live.route))

    def note_reason_cleared(self, session_id: str, cleared_at: datetime) -> None:
        """The alert the session was opened for cleared: the banner says so (on every worker)."""
        live = self._live.get(session_id)
        if live is None:
            return
        live.route = replace(live.route, reason_cleared_at=f"{cleared_at.astimezone(UTC):%H:%M}")
        self._changed(RouteChange("add", session_id, live.route))

    def note_maintenance(self, session_id: str, ends_at: datetime) -> None:
        """The node is draining: the broker ends the session at ``ends_at``; the banner's countdown
        and its note say so (on every worker). The route's own end is left alone: the drain, not the
        proxy's lifetime check, ends it, with the drain's reason."""
        live = self._live.get(session_id)
        if live is None:
            return
        live.route = replace(live.route, maintenance_at=f"{ends_at.astimezone(UTC):%H:%M}",
                             maintenance_epoch=int(ends_at.timestamp()))
        self._changed(RouteChange("add", session_id, live.route))

    def on_remove(self, listener: Callable[[str, str], None]) -> None:
        """Call ``listener(session_id, reason)`` whenever a session is removed."""
        self._removal_listeners.append(listener)

    def on_change(self, listener: Callable[[RouteChange], None]) -> None:
        """Call ``listener(change)`` after every add, extend, remove and issued cookie
        (the worker pool mirrors the table into its worker processes this way)."""
        self._change_listeners.append(listener)

    def _changed(self, change: RouteChange) -> None:
        for listener in list(self._change_listeners):
            listener(change)

    def now(self) -> datetime:
        return self._clock()

    # --- lookups -------------------------------------------------------
    def by_host(self, host: str) -> SessionRoute | Tombstone | None:
        host = host.lower()
        session_id = self._hosts.get(host)
        if session_id is not None:
            return self._live[session_id].route
        tomb = self._tombstones.get(host)
        if tomb is not None and self._clock() - tomb.ended_at > self._tombstone_ttl:
            del self._tombstones[host]
            return None
        return tomb

    async def resolve(self, host: str) -> SessionRoute | Tombstone | None:
        """``by_host`` for the request path; a replica asks its authoritative table on a miss."""
        return self.by_host(host)

    def add_tombstone(self, tomb: Tombstone) -> None:
        if tomb.host not in self._hosts:
            self._tombstones[tomb.host] = tomb

    def get(self, session_id: str) -> SessionRoute | None:
        live = self._live.get(session_id)
        return live.route if live else None

    def live_routes(self) -> list[SessionRoute]:
        return [live.route for live in self._live.values()]

    # --- activity (idle timeout) --------------------------------------
    def touch(self, session_id: str) -> None:
        live = self._live.get(session_id)
        if live is not None:
            live.last_activity = self._clock()

    def last_activity(self, session_id: str) -> datetime | None:
        live = self._live.get(session_id)
        return live.last_activity if live else None

    # --- launch tokens and cookies --------------------------------------
    def issue_launch_token(self, session_id: str) -> str:
        if session_id not in self._live:
            raise NotFound(f"session {session_id} is not live on this proxy; add its route first")
        now = self._clock()
        for key in [k for k, t in self._tokens.items() if t.expires_at < now]:
            del self._tokens[key]
        token = secrets.token_urlsafe(32)
        self._tokens[_digest(token)] = _LaunchToken(session_id, now + self._ttl)
        return token

    def redeem_launch_token(self, host: str, token: str) -> str:
        """Consume a one-time launch token presented on ``host``; return a fresh cookie value."""
        entry = self._tokens.pop(_digest(token), None)
        if entry is None or entry.expires_at < self._clock():
            raise TokenInvalid("launch link is invalid, already used or expired; open the device again from the portal")
        live = self._live.get(entry.session_id)
        if live is None or live.route.host != host.lower():
            raise TokenInvalid("launch link does not belong to this session host; open the device again from the portal")
        cookie = secrets.token_urlsafe(32)
        digest = _digest(cookie)
        live.cookie_hashes.add(digest)
        self._changed(RouteChange("cookie", entry.session_id, cookie_digest=digest))
        return cookie

    async def redeem(self, host: str, token: str) -> str:
        """``redeem_launch_token`` for the request path (a replica redeems at its authoritative table)."""
        return self.redeem_launch_token(host, token)

    def add_cookie_digest(self, session_id: str, digest: str) -> None:
        """Accept a cookie issued elsewhere (by the authoritative table), known only by its SHA-256."""
        live = self._live.get(session_id)
        if live is not None:
            live.cookie_hashes.add(digest)

    def cookie_digests(self, session_id: str) -> list[str]:
        live = self._live.get(session_id)
        return sorted(live.cookie_hashes) if live else []

    def cookie_is_valid(self, session_id: str, cookie: str) -> bool:
        live = self._live.get(session_id)
        if live is None:
            return False
        digest = _digest(cookie)
        return any(hmac.compare_digest(digest, h) for h in live.cookie_hashes)
