"""The DWA session broker: policy -> firewall -> agent command -> tunnel -> proxy route.

Implements ``printgate.interfaces.SessionBroker`` for the portal. Each step is
audited; any failure moves the session to ``failed`` with its reason, undoes
what was set up (fail closed) and tells the technician why. A reaper closes
sessions whose lifetime ran out.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from gateway.agent_commands import CommandPort
from gateway.attribution import AttributedAudit, Attribution
from gateway.credential_use import CredentialUse
from gateway.errors import AgentRefused, NodeCommandFailed, NodeUnavailable
from gateway.node_commands import NodeCommandBus
from policy import OpenAlert
from policy.access import open_alerts_of
from printgate import metrics
from printgate.domain import (
    Agent,
    AuditEventIn,
    Customer,
    Decision,
    Device,
    DeviceId,
    DwaSession,
    DwaState,
    DwaTarget,
    Outcome,
    Reason,
    ReasonKind,
    SessionId,
    SessionReason,
    Site,
    User,
    event_types,
)
from printgate.errors import PrintgateError
from printgate.interfaces import AuditSink, SessionLaunch, SessionRefused
from printgate.lifecycle import Service
from printgate.logs import get_logger
from printgate.store import devices, sessions, tenants
from printgate.store.db import Database
from printgate.supervisor import Supervisor

log = get_logger("gateway.broker")
NO_REASON = "no reason given"
RESTART_REASON = "gateway restarted: the previous gateway process ended without closing the session"
NODE_LOST_REASON = "gateway node lost: the node serving the session stopped renewing its lease"
OWNER_CHECK_S = 1.0  # a node waiting for another to set a session up checks this often that the other lives
LOCAL_NODE = "local"  # the owner of sessions when no node id is given (one process, tests)
DRAIN_REASON = "gateway maintenance: this gateway node was stopped for an upgrade"
DRAINING_REFUSAL = ("This gateway node is shutting down for maintenance and opens no new sessions. "
                    "Open the device again: the next attempt goes to another node.")


class RelayPort(Protocol):
    @property
    def port(self) -> int: ...
    @property
    def host_key_fingerprint(self) -> str: ...

    def issue_credential(self, session_id: str, *, valid_seconds: int, agent_id: str) -> Any: ...
    async def wait_forward(self, session_id: str, timeout: float) -> tuple[str, int]: ...
    async def end_session(self, session_id: str, reason: str) -> None: ...
    def is_connected(self, session_id: str) -> bool: ...


class FirewallPort(Protocol):
    async def allow(self, rule_id: str, src: str, dport: int, timeout_s: int) -> None: ...
    async def revoke(self, rule_id: str) -> None: ...


class ProxyPort(Protocol):
    def launch_url(self, session_id: str, token: str) -> str: ...


class RoutesPort(Protocol):
    def add(self, route: Any) -> None: ...
    def remove(self, session_id: str, reason: str) -> None: ...
    def issue_launch_token(self, session_id: str) -> str: ...
    def drop_logins(self, customer_id: str) -> list[str]: ...
    def note_reason_cleared(self, session_id: str, cleared_at: datetime) -> None: ...


@dataclass(frozen=True, slots=True)
class DwaFacts:
    """Everything the policy needs to decide one ``dwa.open`` (gathered from the store)."""

    user: User
    device: Device
    customer: Customer
    agent: Agent
    source_ip: str
    mfa_age_seconds: float | None
    live_sessions_of_user: int
    live_sessions_of_device: int
    now: datetime
    ruleset: Mapping[str, Any] | None = None  # the dealer's rule set (None: defaults)
    approved_until: datetime | None = None  # a customer admin's approval, if any
    action: str = "dwa.open"  # or "dwa.extend"
    site: Site | None = None  # the device's site: its own remote-access mode, if set (issue 20)
    open_alerts: tuple[OpenAlert, ...] = ()  # the device's open alerts now
    reason: SessionReason | None = None  # why the session is opened (the alert as the store has it)
    reason_refusal: Reason | None = None  # the alert named is not the device's open alert: refused


Decide = Callable[[DwaFacts], Decision]
MakeOpenCommand = Callable[[DwaSession, Device, Any, Any], Any]
MakeCloseCommand = Callable[[str, str], Any]
MakeRoute = Callable[[DwaSession, Device, Customer, tuple[str, int], Attribution], Any]


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    # a session starts with session_ttl_s (or the policy's maximum, if shorter); each "More time"
    # adds extend_step_s, never past the policy's maximum total (session_max_minutes, 30 by default)
    session_ttl_s: int = 1200
    extend_step_s: int = 600
    forward_timeout_s: float = 15.0
    relay_port: int = 0
    proxy_port: int = 0
    reap_interval_s: float = 1.0
    # how long a node waits for the node holding the agent's stream to set a session up (or close,
    # extend it); None: the forward timeout and 5 s more (the owner waits for the agent that long)
    node_command_timeout_s: float | None = None


class DwaBroker(Service):
    """Owns DWA sessions from request to teardown. ``async with DwaBroker(...)``."""

    def __init__(
        self,
        config: BrokerConfig,
        *,
        db: Database,
        audit: AuditSink,
        decide: Decide,
        firewall: FirewallPort,
        relay: RelayPort,
        commands: CommandPort,
        proxy: ProxyPort,
        routes: RoutesPort,
        make_open_command: MakeOpenCommand,
        make_close_command: MakeCloseCommand,
        make_route: MakeRoute,
        agent_address: Callable[[str], str | None] = lambda _agent: None,
        supervisor: Supervisor | None = None,
        credentials: CredentialUse | None = None,
        node_id: str = LOCAL_NODE,
    ) -> None:
        self._node_id = node_id  # the gateway node owning the sessions this broker opens (issue 18)
        # before the node registers: a session another node opens for this one after that (its
        # agent's stream is here) is this process's, not a previous one's leftover
        self._process_started = datetime.now(UTC)
        self._credentials = credentials  # stored device credentials for the proxy (issue 19)
        self._supervisor = supervisor  # runs the reaper (restarted if it fails) when given
        self._cfg = config
        self._db = db
        self._audit = AttributedAudit(audit)  # records of a session carry its tenant, site and user
        self._decide = decide
        self._firewall = firewall
        self._relay = relay
        self._commands = commands
        self._proxy = proxy
        self._routes = routes
        self._make_open = make_open_command
        self._make_close = make_close_command
        self._make_route = make_route
        self._agent_address = agent_address
        self._live: dict[str, tuple[DwaSession, User, str]] = {}
        # how old the technician's MFA was when each live session was opened: "More time" is part of
        # that authorisation (bounded by the policy's maximum total), not a new sign-in
        self._mfa_age_at_open: dict[str, float | None] = {}
        self._lock = asyncio.Lock()
        self._reaper: asyncio.Task[None] | None = None
        self._command_waiters: dict[str, asyncio.Future[None]] = {}
        self._open_commands: dict[str, str] = {}  # open_tunnel command id -> session id
        self._early_results: dict[str, str | None] = {}
        self._orphans: dict[str, set[str]] = {}  # agent -> sessions a restart ended (tunnels to drop)
        self._reason_cleared: set[str] = set()  # sessions whose reason alert was seen cleared
        self._drain_ends_at: datetime | None = None  # draining (SIGTERM): no new sessions; live ones end then
        self._drain_live_at_start = 0
        self._none_live = asyncio.Event()  # set whenever the last live session ended (the drain waits on it)
        self._bus: NodeCommandBus | None = None  # other gateway nodes (issue 18), see use_nodes
        self._delegated: dict[str, str] = {}  # session set up here for another node -> that node

    # ---- other gateway nodes (issue 18, docs/scale-out.md "Sessions through any node") ----------
    def use_nodes(self, bus: NodeCommandBus) -> None:
        """Open, close, extend and rejoin sessions whose agent's stream another node holds by asking
        that node (it owns the session: firewall, relay, tunnel, route all there); answer its asks."""
        self._bus = bus
        bus.handle("prepare_session", self._prepare_delegated)
        bus.handle("close_session", self._close_delegated)
        bus.handle("extend_session", self._extend_delegated)
        bus.handle("rejoin_session", self._rejoin_delegated)
        bus.handle("drop_tunnels", self._drop_tunnels_delegated)

    @property
    def _node_timeout_s(self) -> float:
        return self._cfg.node_command_timeout_s or self._cfg.forward_timeout_s + 5.0

    async def _stream_owner(self, agent_id: str) -> str | None:
        """The node holding ``agent_id``'s command stream when it is another node (None: this one,
        nobody, or one node only)."""
        if self._bus is None or not self._bus.distributed:
            return None
        from printgate.store import nodes  # the registry is only needed where nodes exist

        async with self._db.session() as s:
            owner = await nodes.stream_node(s, agent_id)
        return owner if owner is not None and owner != self._node_id else None

    async def _open_via(self, owner: str, session: DwaSession, facts: DwaFacts, decision: Decision,
                        source_ip: str, ttl: int) -> SessionLaunch | SessionRefused:
        """The policy allowed the session here; ``owner`` holds the agent's stream: the session is
        stored as ``owner``'s and ``owner`` sets it up (firewall, relay credential, tunnel to its
        relay, route in its proxy) and answers with the launch URL naming its session host."""
        assert self._bus is not None
        sid = session.id
        self._audit.register(sid, Attribution(facts.customer.dealer_id, facts.customer.id, facts.device.site_id,
                                              facts.device.id, facts.user.id))
        async with self._db.transaction() as s:
            await sessions.save_session(s, session, node_id=owner)
        payload = {"session_id": sid, "user_id": facts.user.id, "source_ip": source_ip,
                   "mfa_age_seconds": facts.mfa_age_seconds, "ttl_s": ttl, "from_node": self._node_id}
        asked = asyncio.ensure_future(self._bus.request(owner, "prepare_session", payload,
                                                        timeout_s=self._node_timeout_s, agent_id=facts.agent.id))
        watch = asyncio.ensure_future(self._owner_lost(owner, sid))
        try:
            await asyncio.wait((asked, watch), return_when=asyncio.FIRST_COMPLETED)
            if not asked.done():  # the owner died mid-open: fail now, not at the timeout (issue 18 finding 12)
                lost = watch.result()
                asked.cancel()  # (the command row is expired: a late owner does not set it up)
                await asyncio.gather(asked, return_exceptions=True)
                raise NodeUnavailable(lost)
            answer = asked.result()
        except (NodeCommandFailed, NodeUnavailable) as exc:
            # a set-up that failed on the owner is failed and audited there; a refusal before it
            # (not its session, draining) or no answer at all: failed here
            outcome = "timed_out" if isinstance(exc, NodeUnavailable) else "failed"
            await self._audit_delegated(session, owner, "prepare", outcome, error=exc.message)
            await self._fail_unanswered(session, facts, owner, exc.message)
            return SessionRefused(decision, f"The session could not be opened: {exc.message}")
        finally:
            for task in (asked, watch):
                task.cancel()
            await asyncio.gather(asked, watch, return_exceptions=True)
        await self._audit_delegated(session, owner, "prepare", "done")
        stored = await self.get_session(sid)
        return SessionLaunch(session=stored or session, launch_url=str(answer["launch_url"]), decision=decision)

    async def _owner_lost(self, owner: str, sid: str) -> str:
        """Returns (with why) once ``owner`` is no longer live (its lease ran out: killed, paused, cut
        off) or the session was ended meanwhile (a take-over ended it); checked every OWNER_CHECK_S."""
        from printgate.store import nodes  # the registry is only needed where nodes exist

        while True:
            await asyncio.sleep(OWNER_CHECK_S)
            async with self._db.session() as s:
                node = await nodes.get_node(s, owner)
                stored = await sessions.load_session(s, sid)
            if stored is None or stored.state.is_final:
                return (f"gateway node {owner}, which held the agent's connection, was lost while setting the "
                        f"session up and the session was ended ({stored.reason if stored else 'gone'}); open it "
                        "again: the agent reconnects to another node within seconds")
            if node is None or not node.is_live(datetime.now(UTC)):
                return (f"gateway node {owner}, which held the agent's connection, stopped renewing its lease "
                        "while setting the session up (killed, paused or cut off from the database); open it "
                        "again: the agent reconnects to another node within seconds")

    async def _fail_unanswered(self, session: DwaSession, facts: DwaFacts, owner: str, message: str) -> None:
        """The owner did not set the session up: failed in the store unless the owner did so (if
        the owner sets it up late it finds it failed and tears it down)."""
        from printgate.store import nodes

        async with self._db.transaction() as s:
            await nodes.lock_session(s, session.id)  # a take-over ending it at the same time: one of us
            current = await sessions.load_session(s, session.id)
            if current is None or current.state.is_final:
                return
            await sessions.save_session(s, current.transition(DwaState.FAILED, at=datetime.now(UTC), reason=message))
        await self._audit.append(AuditEventIn(
            type=event_types.DWA_SESSION_FAILED, outcome=Outcome.FAILURE, actor=facts.user.email,
            dealer_id=facts.customer.dealer_id, customer_id=facts.customer.id, device_id=facts.device.id,
            session_id=session.id, details={"reason": message, "node": self._node_id, "owner_node": owner}))

    async def _audit_delegated(self, session: DwaSession, owner: str, step: str, outcome: str, *,
                               error: str | None = None) -> None:
        await self._audit.append(AuditEventIn(
            type=event_types.DWA_SESSION_DELEGATED, actor="gateway", device_id=session.device_id,
            session_id=session.id, outcome=Outcome.SUCCESS if outcome == "done" else Outcome.FAILURE,
            details={"node": self._node_id, "owner_node": owner, "step": step, "outcome": outcome,
                     **({"error": error} if error else {})}))

    async def _owner_elsewhere(self, session_id: str) -> tuple[DwaSession, str] | None:
        """A live session another node owns (and a bus to reach it), else None."""
        if self._bus is None or not self._bus.distributed:
            return None
        async with self._db.session() as s:
            session = await sessions.load_session(s, session_id)
            owner = await sessions.owner_of(s, session_id)
        if session is None or session.state.is_final or owner is None or owner == self._node_id:
            return None
        return session, owner

    async def _ask_owner(self, session: DwaSession, owner: str, step: str,
                         payload: dict[str, Any]) -> dict[str, Any] | None:
        assert self._bus is not None
        try:
            answer = await self._bus.request(owner, f"{step}_session",
                                             {"session_id": session.id, **payload, "from_node": self._node_id},
                                             timeout_s=self._node_timeout_s, agent_id=session.agent_id)
        except (NodeCommandFailed, NodeUnavailable) as exc:
            log.warning("dwa.delegated_failed", session=session.id, step=step, owner_node=owner, error=exc.message)
            await self._audit_delegated(session, owner, step, "failed", error=exc.message)
            return None
        await self._audit_delegated(session, owner, step, "done")
        return answer

    async def _prepare_delegated(self, payload: dict[str, Any], _agent: str | None) -> dict[str, Any]:
        """Another node decided this session and stored it as ours: set it up here."""
        sid = SessionId(str(payload["session_id"]))
        if self._drain_ends_at is not None:
            raise PrintgateError(f"gateway node {self._node_id} is draining for maintenance and opens no new "
                                 "sessions; try again in a minute (the agent reconnects to another node)")
        async with self._db.session() as s:
            session = await sessions.load_session(s, sid)
            owner = await sessions.owner_of(s, sid)
            user = await tenants.get_user(s, str(payload["user_id"]))
        if session is None or user is None or owner != self._node_id or session.state is not DwaState.AUTHORISED:
            raise PrintgateError(f"session {sid} is not an authorised session of gateway node {self._node_id}")
        source_ip = str(payload["source_ip"])
        mfa_age = payload.get("mfa_age_seconds")
        facts = await self._gather(user, session.device_id, source_ip, float(mfa_age) if mfa_age is not None else None,
                                   datetime.now(UTC), reason=session.reason, resolve_reason=False)
        if facts is None:
            raise PrintgateError(f"the device of session {sid} is gone")
        requester = str(payload.get("from_node", "?"))
        self._delegated[sid] = requester
        try:
            launch_url = await self._set_up(session, facts, source_ip, int(payload["ttl_s"]))
        except (PrintgateError, TimeoutError) as exc:
            message = exc.message if isinstance(exc, PrintgateError) else "the tunnel did not open in time"
            await self._fail(session, facts, message)
            self._delegated.pop(sid, None)
            raise PrintgateError(message) from exc
        async with self._db.session() as s:  # the requester stopped waiting meanwhile: not a live session
            stored = await sessions.load_session(s, sid)
        if stored is None or stored.state in (DwaState.FAILED, DwaState.CLOSED):
            await self.close_session(sid, reason="the requesting node stopped waiting", actor="system")
            raise PrintgateError(f"gateway node {requester} stopped waiting for session {sid}")
        return {"launch_url": launch_url, "expires_at": stored.expires_at.isoformat()}

    async def _close_delegated(self, payload: dict[str, Any], _agent: str | None) -> dict[str, Any]:
        sid = SessionId(str(payload["session_id"]))
        if sid not in self._live:
            return {"closed": False}
        self._delegated.setdefault(sid, str(payload.get("from_node", "?")))
        await self.close_session(sid, reason=str(payload.get("reason", "ended")),
                                 actor=str(payload.get("actor", "system")))
        return {"closed": True}

    async def _extend_delegated(self, payload: dict[str, Any], _agent: str | None) -> dict[str, Any]:
        sid = str(payload["session_id"])
        new_end = await self.extend_session(sid) if sid in self._live else None
        return {"expires_at": new_end.isoformat() if new_end is not None else None}

    async def _rejoin_delegated(self, payload: dict[str, Any], _agent: str | None) -> dict[str, Any]:
        url = await self.rejoin_session(str(payload["user_id"]), DeviceId(str(payload["device_id"])),
                                        source_ip=str(payload["source_ip"]), _here_only=True)
        return {"launch_url": url}

    async def _drop_tunnels_delegated(self, payload: dict[str, Any], agent_id: str | None) -> dict[str, Any]:
        """A node that took another over ended these sessions; this node holds the agent's stream."""
        if agent_id is None:
            return {"dropped": 0}
        sids = [str(x) for x in payload.get("session_ids", [])][:1000]
        self._orphans.setdefault(agent_id, set()).update(sids)
        return {"dropped": await self.drop_orphans(agent_id)}

    async def _tell_agents_of_ended(self, ended: list[tuple[DwaSession, DwaState, str | None]]) -> None:
        """After a take-over: the agents of the ended sessions drop their tunnels now, through whichever
        node holds their stream (they reconnected elsewhere within a second of the owner's death)."""
        if self._bus is None or not ended:
            return
        by_agent: dict[str, list[str]] = {}
        for stale, _, _ in ended:
            by_agent.setdefault(stale.agent_id, []).append(stale.id)
        try:
            results = await self._bus.fan_out("drop_tunnels", {a: {"session_ids": ids} for a, ids in by_agent.items()},
                                              timeout_s=5.0)
        except Exception as exc:  # they are told when they next connect anywhere
            log.warning("dwa.orphans_not_told", agents=len(by_agent), error=str(exc))
            return
        log.info("dwa.orphans_told", agents=len(by_agent), ok=sum(1 for r in results.values() if r.ok))

    # ---- lifecycle -------------------------------------------------------
    async def start(self) -> None:
        await self._reap_stale_from_store()
        if self._supervisor is not None:
            self._supervisor.add("dwa-reaper", self._reap_loop)
        else:
            self._reaper = asyncio.create_task(self._reap_loop(), name="dwa-reaper")

    async def aclose(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            await asyncio.gather(self._reaper, return_exceptions=True)
        for sid in list(self._live):
            await self.close_session(SessionId(sid), reason="gateway shutting down", actor="system")

    # ---- SessionBroker ----------------------------------------------------
    async def get_session(self, session_id: SessionId) -> DwaSession | None:
        async with self._db.session() as s:
            return await sessions.load_session(s, session_id)

    def live_sessions_of(self, user_id: str) -> list[DwaSession]:
        return [sess for sess, user, _ in self._live.values() if user.id == user_id]

    async def agent_lost(self, agent_id: str) -> None:
        """The agent went offline: its tunnels are gone, so are its sessions. While draining this
        node sent its agents to other nodes itself: the sessions' tunnels (to this node's relay)
        stay up until they end or the grace period does."""
        if self._drain_ends_at is not None:
            log.info("dwa.agent_handed_over", agent=agent_id, node=self._node_id)
            return
        for sid in [sess.id for sess, _, _ in self._live.values() if sess.agent_id == agent_id]:
            await self.close_session(sid, reason="the on-site agent went offline", actor="system")

    async def resume_tunnels(self, agent_id: str) -> int:
        """The agent is back (restarted, updated) and its live sessions have no tunnel: ask it to
        open each again, with a fresh credential for the rest of the session. The relay binds
        each session's port again, so routes and the technicians' cookies stay valid; a device
        that changed meanwhile fails the agent's identity check and ends its session."""
        now = datetime.now(UTC)
        resumed = 0
        for session, _user, _ip in list(self._live.values()):
            remaining = int((session.expires_at - now).total_seconds())
            if (session.agent_id != agent_id or session.state is not DwaState.ACTIVE or remaining <= 0
                    or self._relay.is_connected(session.id)):
                continue
            async with self._db.session() as s:
                device = await devices.get_device(s, session.device_id)
            if device is None:
                continue
            try:
                credential = self._relay.issue_credential(session.id, valid_seconds=remaining, agent_id=agent_id)
                command_id = await self._commands.send(
                    agent_id, self._make_open(session, device, credential, self._relay), ttl_s=30)
            except PrintgateError as exc:
                log.warning("dwa.resume_failed", session=session.id, error=exc.message)
                continue
            self._open_commands[command_id] = session.id
            await self._audit_step(session, event_types.AGENT_COMMAND_SENT,
                                   {"command": "open_tunnel", "id": command_id, "reason": "agent reconnected"})
            resumed += 1
        return resumed

    async def open_session(
        self, user: User, device_id: DeviceId, *, source_ip: str, mfa_age_seconds: float | None,
        reason: SessionReason | None = None,
    ) -> SessionLaunch | SessionRefused:
        """``reason``: why (issue 20); an alert reason needs only its ``alert_id``: the broker takes
        the alert from the store and refuses one that is not the device's."""
        result = await self._open_session(user, device_id, source_ip=source_ip, mfa_age_seconds=mfa_age_seconds,
                                          reason=reason)
        (metrics.SESSIONS_OPENED if isinstance(result, SessionLaunch) else metrics.SESSIONS_REFUSED).inc()
        return result

    @property
    def live_count(self) -> int:
        """Sessions open now."""
        return len(self._live)

    async def _open_session(
        self, user: User, device_id: DeviceId, *, source_ip: str, mfa_age_seconds: float | None,
        reason: SessionReason | None = None,
    ) -> SessionLaunch | SessionRefused:
        now = datetime.now(UTC)
        if self._drain_ends_at is not None:  # SIGTERM: the load balancer sends the next attempt elsewhere
            decision = Decision(False, (Reason("gateway.draining", f"gateway node {self._node_id} is draining "
                                               "for maintenance and opens no new sessions"),))
            await self._audit_decision(user, device_id, None, decision, source_ip)
            return SessionRefused(decision, DRAINING_REFUSAL)
        facts = await self._gather(user, device_id, source_ip, mfa_age_seconds, now, reason=reason)
        if facts is None:
            decision = Decision(False, (_unknown_device(device_id),))
            await self._audit_decision(user, device_id, None, decision, source_ip)
            return SessionRefused(decision, "This device does not exist or is not yours.")
        if facts.reason_refusal is not None:
            decision = Decision(False, (facts.reason_refusal,))
            await self._audit_decision(user, device_id, facts, decision, source_ip)
            return SessionRefused(decision, "The alert named as the reason cannot be this session's reason: "
                                  + facts.reason_refusal.message)
        decision = self._decide(facts)
        sid = SessionId(secrets.token_hex(8))
        ttl = self._ttl(decision)
        session = DwaSession(
            id=sid, user_id=user.id, device_id=facts.device.id, agent_id=facts.agent.id,
            target=DwaTarget(facts.device.ip, facts.device.ews_port, facts.device.ews_scheme),
            created_at=now, expires_at=now + timedelta(seconds=ttl), reason=facts.reason,
        )
        await self._audit_decision(user, device_id, facts, decision, source_ip, session_id=sid)
        if not decision.allow:
            session = session.transition(DwaState.DENIED, at=now, reason=_reason_text(decision))
            await self._save(session)
            return SessionRefused(decision, "Access refused by policy.")
        session = session.transition(DwaState.AUTHORISED, at=now, reason=_reason_text(decision))
        owner = await self._stream_owner(facts.agent.id)
        if owner is not None:  # another node holds the agent's stream: it owns and sets up the session
            return await self._open_via(owner, session, facts, decision, source_ip, ttl)
        await self._save(session)
        try:
            launch_url = await self._set_up(session, facts, source_ip, ttl)
        except (PrintgateError, TimeoutError) as exc:
            message = exc.message if isinstance(exc, PrintgateError) else "the tunnel did not open in time"
            await self._fail(session, facts, message)
            return SessionRefused(decision, f"The session could not be opened: {message}")
        return SessionLaunch(session=self._live[sid][0], launch_url=launch_url, decision=decision)

    async def extend_session(self, session_id: str) -> datetime | None:
        """More time for a live session if the policy allows ``dwa.extend`` now; the new end."""
        entry = self._live.get(session_id)
        if entry is not None and self._drain_ends_at is not None:  # draining: it ends with the drain
            return None
        if entry is None:
            elsewhere = await self._owner_elsewhere(session_id)
            if elsewhere is None:
                return None
            answer = await self._ask_owner(*elsewhere, "extend", {})
            end = answer.get("expires_at") if answer else None
            return datetime.fromisoformat(str(end)) if end else None
        session, user, source_ip = entry
        now = datetime.now(UTC)
        # the MFA that authorised the session, as old as it was at the open (a session resumed after a
        # restart has no record: its age is then a lower bound of the MFA's age, as before)
        mfa_age = self._mfa_age_at_open.get(session_id, (now - session.created_at).total_seconds())
        facts = await self._gather(user, session.device_id, source_ip, mfa_age, now, reason=session.reason,
                                   resolve_reason=False)  # its alert may have cleared since: still its reason
        if facts is None:
            return None
        facts = replace(facts, action="dwa.extend",
                        live_sessions_of_user=facts.live_sessions_of_user - 1,
                        live_sessions_of_device=facts.live_sessions_of_device - 1)
        decision = self._decide(facts)
        await self._audit_decision(user, session.device_id, facts, decision, source_ip,
                                   session_id=session.id, action="dwa.extend")
        if not decision.allow:
            return None
        longest = decision.obligations.max_duration_seconds or self._cfg.session_ttl_s
        cap = session.created_at + timedelta(seconds=longest)  # the policy's maximum total
        new_end = min(cap, max(session.expires_at, now) + timedelta(seconds=self._cfg.extend_step_s))
        if new_end <= session.expires_at:
            log.info("dwa.extend_at_maximum", session=session.id, max_minutes=longest // 60)
            return None  # it already has the longest time the policy allows
        self._relay.issue_credential(session.id, valid_seconds=int((new_end - now).total_seconds()),
                                     agent_id=session.agent_id)  # moves the relay's deadline
        extended = replace(session, expires_at=new_end)
        async with self._lock:
            if session.id in self._live:
                self._live[session.id] = (extended, user, source_ip)
        await self._save(extended)
        await self._audit_step(extended, event_types.DWA_SESSION_EXTENDED, {"expires_at": new_end.isoformat()})
        return new_end

    async def rejoin_session(self, user_id: str, device_id: DeviceId, *, source_ip: str,
                             _here_only: bool = False) -> str | None:
        """A new one-time launch link into ``user_id``'s own live session on ``device_id`` (same
        session, tunnel and end time), e.g. after its tab was closed; only from the address it was
        opened from (the firewall exception is for that address). None when there is none or the
        address differs (audited)."""
        now = datetime.now(UTC)
        mine = [entry for entry in self._live.values()
                if entry[0].user_id == user_id and entry[0].device_id == device_id
                and entry[0].state is DwaState.ACTIVE and entry[0].is_live(now)]
        if not mine:
            return None if _here_only else await self._rejoin_elsewhere(user_id, device_id, source_ip)
        session, _user, opened_from = mine[0]
        if source_ip != opened_from:
            await self._audit_step(session, event_types.DWA_SESSION_REJOIN_REFUSED,
                                   {"source_ip": source_ip, "reason": "not the address the session was opened from"})
            return None
        token = self._routes.issue_launch_token(session.id)
        await self._audit_step(session, event_types.DWA_SESSION_REJOINED, {"source_ip": source_ip})
        return self._proxy.launch_url(session.id, token)

    async def _rejoin_elsewhere(self, user_id: str, device_id: DeviceId, source_ip: str) -> str | None:
        if self._bus is None or not self._bus.distributed:
            return None
        async with self._db.session() as s:
            ids = await sessions.live_dwa_session_ids_of_user(s, user_id)
        for sid in ids:
            elsewhere = await self._owner_elsewhere(sid)
            if elsewhere is None or elsewhere[0].device_id != device_id or elsewhere[0].state is not DwaState.ACTIVE:
                continue
            answer = await self._ask_owner(*elsewhere, "rejoin", {"user_id": user_id, "device_id": device_id,
                                                                  "source_ip": source_ip})
            if answer and answer.get("launch_url"):
                return str(answer["launch_url"])
        return None

    async def close_session(self, session_id: SessionId, *, reason: str, actor: str) -> None:
        """End a session: here when this node owns it, else by asking the node that does."""
        async with self._lock:
            entry = self._live.pop(session_id, None)
            self._mfa_age_at_open.pop(session_id, None)
            if not self._live:
                self._none_live.set()
        if entry is None:
            elsewhere = await self._owner_elsewhere(session_id)
            if elsewhere is not None:
                await self._ask_owner(*elsewhere, "close", {"reason": reason, "actor": actor})
            return
        self._reason_cleared.discard(session_id)
        session, _user, source_ip = entry
        for cid in [c for c, s in self._open_commands.items() if s == session_id]:
            del self._open_commands[cid]
        await self._tear_down(session, reason)
        now = datetime.now(UTC)
        if not session.state.is_final:
            session = session.transition(DwaState.CLOSED, at=now, reason=reason)
            await self._save(session)
        await self._audit.append(AuditEventIn(
            type=event_types.DWA_SESSION_CLOSED, actor=actor, device_id=session.device_id,
            session_id=session.id, source_ip=source_ip, details={"reason": reason, **self._node_details(session.id)},
        ))
        self._delegated.pop(session_id, None)
        log.info("dwa.closed", session=session.id, reason=reason, actor=actor)

    async def drop_credentials(self, customer_id: str, *, reason: str, actor: str) -> int:
        """A stored credential of the customer was forbidden or erased: live sessions stop signing
        in with it at once (every proxy worker forgets the secret and the device cookie jar)."""
        dropped = set(self._routes.drop_logins(customer_id))
        for session, _user, _ip in [e for sid, e in list(self._live.items()) if sid in dropped]:
            await self._audit.append(AuditEventIn(
                type=event_types.DWA_CREDENTIALS_DROPPED, actor=actor, device_id=session.device_id,
                session_id=session.id, details={"reason": reason}))
        if dropped:
            log.info("dwa.credentials_dropped", customer=customer_id, sessions=len(dropped), reason=reason)
        return len(dropped)

    # ---- steps -------------------------------------------------------------
    async def _gather(
        self, user: User, device_id: str, source_ip: str, mfa_age: float | None, now: datetime,
        *, reason: SessionReason | None = None, resolve_reason: bool = True,
    ) -> DwaFacts | None:
        async with self._db.session() as s:  # the same gathering as the preview and `policy explain`
            found = await sessions.gather_access_facts(s, user, device_id, now, reason=reason,
                                                       resolve_reason=resolve_reason)
        if found is None or found.agent is None:
            return None
        live = [sess for sess, _, _ in self._live.values()]
        of_user = sum(1 for x in live if x.user_id == user.id)
        of_device = sum(1 for x in live if x.device_id == found.device.id)
        if self._bus is not None and self._bus.distributed:  # other nodes' sessions count too
            async with self._db.session() as s:
                of_user = max(of_user, await sessions.count_live_dwa_sessions(s, user_id=user.id))
                of_device = max(of_device, await sessions.count_live_dwa_sessions(s, device_id=found.device.id))
        return DwaFacts(
            user=user, device=found.device, customer=found.customer, agent=found.agent, source_ip=source_ip,
            mfa_age_seconds=mfa_age,
            live_sessions_of_user=of_user,
            live_sessions_of_device=of_device,
            now=now, ruleset=found.ruleset, approved_until=found.approved_until,
            site=found.site, open_alerts=open_alerts_of(found.open_alerts), reason=found.reason,
            reason_refusal=found.reason_refusal,
        )

    async def _set_up(self, session: DwaSession, facts: DwaFacts, source_ip: str, ttl: int) -> str:
        sid = session.id
        attribution = Attribution(facts.customer.dealer_id, facts.customer.id, facts.device.site_id,
                                  facts.device.id, facts.user.id)
        self._audit.register(sid, attribution)
        async with self._lock:
            self._live[sid] = (session, facts.user, source_ip)
            self._mfa_age_at_open[sid] = facts.mfa_age_seconds
        await self._firewall.allow(f"{sid}-tech", source_ip, self._cfg.proxy_port, ttl)
        agent_ip = self._agent_address(facts.agent.id)
        if agent_ip is not None:
            await self._firewall.allow(f"{sid}-agent", agent_ip, self._cfg.relay_port, ttl)
        await self._audit_step(session, event_types.FIREWALL_RULE_ADDED, {"technician": source_ip, "agent": agent_ip})
        credential = self._relay.issue_credential(sid, valid_seconds=ttl, agent_id=facts.agent.id)
        command = self._make_open(session, facts.device, credential, self._relay)
        command_id = await self._commands.send(facts.agent.id, command, ttl_s=30)
        self._open_commands[command_id] = sid
        await self._audit_step(session, event_types.AGENT_COMMAND_SENT, {"command": "open_tunnel", "id": command_id})
        upstream = await self._wait_forward_or_refusal(sid, command_id)
        session = await self._advance(session, DwaState.TUNNEL_OPEN, "agent opened the forward")
        await self._audit_step(session, event_types.TUNNEL_OPENED, {"upstream": f"{upstream[0]}:{upstream[1]}"})
        route = self._make_route(session, facts.device, facts.customer, upstream, attribution)
        if session.reason is not None and hasattr(route, "reason"):  # the banner shows it
            route = replace(route, reason=session.reason.label)
        self._routes.add(await self._with_login(session, facts, route))
        token = self._routes.issue_launch_token(sid)
        session = await self._advance(session, DwaState.ACTIVE, "proxy route ready")
        await self._audit_step(session, event_types.DWA_SESSION_OPENED, {
            "expires_at": session.expires_at.isoformat(),
            **({"reason": session.reason.to_dict()} if session.reason is not None else {}),
            "reason_label": reason_label_of(session.reason)})
        log.info("dwa.opened", session=sid, device=facts.device.id, user=facts.user.id)
        return self._proxy.launch_url(sid, token)

    async def _with_login(self, session: DwaSession, facts: DwaFacts, route: Any) -> Any:
        """The route with the stored credential the policy lets the proxy sign in with (audited,
        never the secret); unchanged when there is none or the right is missing."""
        if self._credentials is None or not hasattr(route, "login"):  # a SessionRoute
            return route
        choice = await self._credentials.choose(user=facts.user, device=facts.device, customer=facts.customer,
                                                ruleset=facts.ruleset)
        login = choice.login
        await self._audit_step(session, event_types.DWA_CREDENTIALS_DECISION, {
            "allow": choice.decision.allow and login is not None,
            "reasons": [r.code for r in choice.decision.reasons],
            **({"account": login.account, "kind": login.kind.value, "scope": login.scope.value,
                "credential_version": login.version} if login else {}),
        })
        return replace(route, login=login) if login is not None else route

    async def _wait_forward_or_refusal(self, sid: str, command_id: str) -> tuple[str, int]:
        """The relay's forward for ``sid`` once the agent confirmed it, or the agent's refusal.

        Both are needed: the relay listens as soon as the agent asks for the
        forward, but the agent can take new connections only after it has the
        relay's answer (its command result says so).
        """
        answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if command_id in self._early_results:
            _settle(answer, self._early_results.pop(command_id))
        self._command_waiters[command_id] = answer
        try:
            async with asyncio.timeout(self._cfg.forward_timeout_s):
                upstream = await self._relay.wait_forward(sid, self._cfg.forward_timeout_s)
                await answer  # raises AgentRefused if the agent refused
            return upstream
        finally:
            self._command_waiters.pop(command_id, None)
            if not answer.done():
                answer.cancel()

    def command_result(self, command_id: str, *, ok: bool, message: str) -> str | None:
        """The agent's answer to a command (``ok=False``: it refused, e.g. identity mismatch).

        Returns the id of a live session the agent reports failing *after* its tunnel opened
        (a swapped device refused mid-session): the caller ends it.
        """
        outcome = None if ok else message
        waiter = self._command_waiters.get(command_id)
        sid = self._open_commands.get(command_id)
        if waiter is None and not ok and sid is not None and sid in self._live:
            return sid
        if waiter is None:
            if len(self._early_results) < 1024:
                self._early_results[command_id] = outcome
            return None
        _settle(waiter, outcome)
        return None

    def _ttl(self, decision: Decision) -> int:
        """The session lifetime: the gateway's limit, shortened by the policy's obligation."""
        limit = decision.obligations.max_duration_seconds
        return min(self._cfg.session_ttl_s, limit) if limit else self._cfg.session_ttl_s

    async def _advance(self, session: DwaSession, state: DwaState, reason: str) -> DwaSession:
        session = session.transition(state, at=datetime.now(UTC), reason=reason)
        async with self._lock:
            entry = self._live.get(session.id)
            if entry is not None:
                self._live[session.id] = (session, entry[1], entry[2])
        await self._save(session)
        return session

    async def _fail(self, session: DwaSession, facts: DwaFacts, message: str) -> None:
        async with self._lock:
            entry = self._live.pop(session.id, None)
            self._mfa_age_at_open.pop(session.id, None)
            if not self._live:
                self._none_live.set()
        for cid in [c for c, s in self._open_commands.items() if s == session.id]:
            del self._open_commands[cid]
        current = entry[0] if entry else session
        await self._tear_down(current, f"failed: {message}")
        failed = current.transition(DwaState.FAILED, at=datetime.now(UTC), reason=message)
        await self._save(failed)
        await self._audit.append(AuditEventIn(
            type=event_types.DWA_SESSION_FAILED, outcome=Outcome.FAILURE, actor=facts.user.email,
            dealer_id=facts.customer.dealer_id, customer_id=facts.customer.id,
            device_id=facts.device.id, session_id=session.id,
            details={"reason": message, **self._node_details(session.id)},
        ))
        log.warning("dwa.failed", session=session.id, reason=message)

    async def _tear_down(self, session: DwaSession, reason: str) -> None:
        """Undo every step; each undo is attempted even if another one fails."""
        sid = session.id
        undo: list[tuple[str, Awaitable[Any]]] = [
            ("relay", self._relay.end_session(sid, reason)),
            ("firewall-tech", self._firewall.revoke(f"{sid}-tech")),
            ("firewall-agent", self._firewall.revoke(f"{sid}-agent")),
            ("agent", self._commands.send(session.agent_id, self._make_close(sid, reason), ttl_s=30)),
        ]
        self._routes.remove(sid, reason)
        for name, aw in undo:
            try:
                await aw
            except Exception as exc:  # teardown must go on
                log.warning("dwa.teardown_step_failed", session=sid, step=name, error=str(exc))
        await self._audit_step(session, event_types.TUNNEL_CLOSED, {"reason": reason})
        await self._audit_step(session, event_types.FIREWALL_RULE_REMOVED, {"reason": reason})

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(self._cfg.reap_interval_s)
            now = datetime.now(UTC)
            expired = [sid for sid, (sess, _, _) in self._live.items() if now >= sess.expires_at]
            for sid in expired:
                await self.close_session(SessionId(sid), reason="session lifetime ended", actor="system")
            try:
                await self.watch_reason_alerts()
            except Exception as exc:  # the store being away must not stop the reaping
                log.warning("dwa.reason_watch_failed", error=str(exc))

    async def watch_reason_alerts(self) -> int:
        """Live sessions opened for an alert that has cleared since (a later readings batch no
        longer had it): the banner says so from the next page on, and it is audited once. How
        many were newly seen cleared. Runs with the reaper; one query while such sessions live."""
        watched = {sess.reason.alert_id: sess for sess, _, _ in self._live.values()
                   if sess.reason is not None and sess.reason.kind is ReasonKind.ALERT
                   and sess.reason.alert_id is not None and sess.id not in self._reason_cleared}
        if not watched:
            return 0
        async with self._db.session() as s:
            cleared = await sessions.alerts_cleared_at(s, list(watched))
        seen = 0
        for alert_id, cleared_at in cleared.items():
            for session in [x for x, _, _ in list(self._live.values())
                            if x.reason is not None and x.reason.alert_id == alert_id
                            and x.id not in self._reason_cleared]:
                self._reason_cleared.add(session.id)
                self._routes.note_reason_cleared(session.id, cleared_at)
                await self._audit_step(session, event_types.DWA_SESSION_REASON_CLEARED, {
                    "alert_id": alert_id, "code": session.reason.alert_code if session.reason else "",
                    "cleared_at": cleared_at.isoformat()})
                seen += 1
        return seen

    @property
    def node_id(self) -> str:
        return self._node_id

    # ---- draining (SIGTERM, rolling upgrade; docs/scale-out.md "Draining") ------------------------
    @property
    def draining(self) -> bool:
        return self._drain_ends_at is not None

    async def start_draining(self, grace_s: float) -> datetime:
        """Refuse new sessions from now on; live sessions end at the latest ``grace_s`` from now (the
        banner says when); audited. The time they end."""
        if self._drain_ends_at is not None:
            return self._drain_ends_at
        now = datetime.now(UTC)
        ends_at = now + timedelta(seconds=grace_s)
        self._drain_ends_at = ends_at
        self._drain_live_at_start = len(self._live)
        for sid, (session, _user, _ip) in list(self._live.items()):
            if session.expires_at > ends_at:
                self._note_maintenance_end(sid, ends_at)
        await self._audit.append(AuditEventIn(
            type=event_types.GATEWAY_NODE_DRAINING, outcome=Outcome.SUCCESS, actor="gateway",
            details={"node": self._node_id, "live_sessions": len(self._live), "grace_seconds": grace_s,
                     "sessions_end_by": ends_at.isoformat()}))
        log.info("node.draining", node=self._node_id, live_sessions=len(self._live), grace_s=grace_s,
                    sessions_end_by=ends_at.isoformat())
        return ends_at

    def _note_maintenance_end(self, sid: str, ends_at: datetime) -> None:
        """The banner counts down to the drain's end and says "gateway maintenance"."""
        note = getattr(self._routes, "note_maintenance", None)
        if note is None:  # a route table without banners (tests)
            return
        try:
            note(sid, ends_at)
        except Exception as exc:  # the banner only; the session still ends at ends_at
            log.warning("dwa.drain_banner_failed", session=sid, error=str(exc))

    async def finish_draining(self) -> int:
        """Wait until the live sessions ended on their own or the grace period ran out, then end the
        rest ("gateway maintenance", each audited like any end); audited with the counts. How many
        were ended by the drain."""
        ends_at = self._drain_ends_at or datetime.now(UTC)
        live_at_start = self._drain_live_at_start
        left_s = (ends_at - datetime.now(UTC)).total_seconds()
        if self._live and left_s > 0:
            self._none_live.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left_s):
                    await self._none_live.wait()
        remaining = list(self._live)
        for sid in remaining:
            await self.close_session(SessionId(sid), reason=DRAIN_REASON, actor="system")
        await self._audit.append(AuditEventIn(
            type=event_types.GATEWAY_NODE_DRAINED, outcome=Outcome.SUCCESS, actor="gateway",
            details={"node": self._node_id, "sessions_at_start": live_at_start,
                     "ended_on_their_own": live_at_start - len(remaining), "ended_by_drain": len(remaining)}))
        log.info("node.drained", node=self._node_id, ended_by_drain=len(remaining))
        return len(remaining)

    async def _reap_stale_from_store(self) -> None:
        """Sessions a previous process of THIS node left live cannot be live now (nor those opened
        before sessions had owners): each is ended, its end audited, and its agent told to drop the
        tunnel when it connects (``drop_orphans``). Other nodes' sessions are theirs (issue 18)."""
        now = datetime.now(UTC)
        ended: list[tuple[DwaSession, DwaState, str | None]] = []
        async with self._db.transaction() as s:
            for sid in await sessions.live_session_ids(s, owners=[self._node_id], unowned=True,
                                                       created_before=self._process_started):
                if (stale := await self._end_stale(s, sid, now, RESTART_REASON)) is not None:
                    ended.append(stale)
        await self._audit_stale(ended, RESTART_REASON, taken_over=())

    async def take_over_expired_nodes(self) -> list[str]:
        """End the sessions of nodes whose lease ran out (killed, hung, cut off), in the transaction
        that claims those nodes (``FOR UPDATE SKIP LOCKED`` on PostgreSQL: never two takers); each
        taking-over and each session's end audited with both node ids. The node ids taken over."""
        from printgate.store import nodes  # the registry is only needed where nodes exist

        now = datetime.now(UTC)
        ended: list[tuple[DwaSession, DwaState, str | None]] = []
        async with self._db.transaction() as s:
            dead = await nodes.claim_expired(s, by=self._node_id, now=now)
            if dead:
                for sid in await sessions.live_session_ids(s, owners=[n.id for n in dead]):
                    if (stale := await self._end_stale(s, sid, now, NODE_LOST_REASON)) is not None:
                        ended.append(stale)
        for node in dead:
            count = sum(1 for stale, _, owner in ended if owner == node.id)
            await self._audit.append(AuditEventIn(
                type=event_types.GATEWAY_NODE_TAKEN_OVER, outcome=Outcome.SUCCESS, actor="gateway",
                details={"node": node.id, "by_node": self._node_id, "state_before": node.state,
                         "lease_expired_at": node.lease_expires_at.isoformat(), "sessions_ended": count},
            ))
            log.warning("node.taken_over", node=node.id, by=self._node_id, sessions=count)
        await self._audit_stale(ended, NODE_LOST_REASON, taken_over=[n.id for n in dead])
        await self._tell_agents_of_ended(ended)
        return [n.id for n in dead]

    async def end_sessions_ended_elsewhere(self) -> list[str]:
        """This node lost its lease while alive (database unreachable, process paused) and another
        node took it over, ending its sessions in the store: end them here too (relay, firewall,
        route, agent's tunnel), so nothing the store says is closed stays reachable. The ids."""
        live = list(self._live)
        if not live:
            return []
        async with self._db.session() as s:
            gone = [sid for sid in live
                    if (stored := await sessions.load_session(s, sid)) is None or stored.state.is_final]
        for sid in gone:
            await self.close_session(SessionId(sid), reason=NODE_LOST_REASON + " (this node was taken over)",
                                     actor="system")
        return gone

    async def _end_stale(self, s: Any, sid: str, now: datetime,
                         reason: str) -> tuple[DwaSession, DwaState, str | None] | None:
        from printgate.store import nodes

        await nodes.lock_session(s, sid)  # the node that asked for a cross-node open may be failing it now
        stale = await sessions.load_session(s, sid)
        if stale is None or stale.state.is_final:  # it did (listed live before the lock)
            return None
        owner = await sessions.owner_of(s, sid)
        # never set up (requested, or authorised and its owner lost mid-open): failed, as docs/scale-out.md says
        target = DwaState.FAILED if stale.state in (DwaState.REQUESTED, DwaState.AUTHORISED) else DwaState.CLOSED
        await sessions.save_session(s, stale.transition(target, at=now, reason=reason))
        await self._attribute_from_store(s, stale)
        return stale, target, owner

    async def _audit_stale(self, ended: list[tuple[DwaSession, DwaState, str | None]], reason: str,
                           taken_over: Any) -> None:
        for stale, target, owner in ended:
            self._orphans.setdefault(stale.agent_id, set()).add(stale.id)
            await self._audit.append(AuditEventIn(
                type=event_types.DWA_SESSION_FAILED if target is DwaState.FAILED else event_types.DWA_SESSION_CLOSED,
                outcome=Outcome.FAILURE if target is DwaState.FAILED else Outcome.SUCCESS,
                actor="gateway", device_id=stale.device_id, session_id=stale.id,
                details={"reason": reason, "state_before": str(stale.state), "owner_node": owner,
                         "ended_by_node": self._node_id, "taken_over": owner in taken_over},
            ))
            log.warning("dwa.closed_after_restart" if not taken_over else "dwa.closed_node_lost",
                        session=stale.id, agent=stale.agent_id, owner_node=owner, node=self._node_id)

    async def _attribute_from_store(self, s: Any, session: DwaSession) -> None:
        """Register the tenant, site and user of a session this process did not open (its records
        after a restart reach the tenant's auditors too)."""
        device = await devices.get_device(s, session.device_id)
        tenancy = await tenants.tenant_of_site(s, device.site_id) if device is not None else None
        customer = tenancy[0] if tenancy is not None else None
        self._audit.register(session.id, Attribution(
            customer.dealer_id if customer else None, customer.id if customer else None,
            device.site_id if device else None, session.device_id, session.user_id))

    async def drop_orphans(self, agent_id: str) -> int:
        """Tell a (re)connected agent to drop the tunnels of sessions a restart ended; how many. With
        several nodes also those the store says are over (ended, or their node is dead) while their
        credential is valid: the agent may have reconnected here before another node's take-over ended
        them, and would retry their tunnels until the credential expires (issue 18 finding 4)."""
        if self._bus is not None and self._bus.distributed:
            from printgate.store import nodes

            async with self._db.session() as s:
                stale = await nodes.stale_tunnels_of(s, agent_id, datetime.now(UTC))
            if stale:
                self._orphans.setdefault(agent_id, set()).update(stale)
        orphans = sorted(self._orphans.get(agent_id, ()))
        for sid in orphans:
            try:
                await self._commands.send(agent_id, self._make_close(sid, RESTART_REASON), ttl_s=60)
            except Exception as exc:  # the next connection of the agent tries again
                log.warning("dwa.orphan_close_failed", session=sid, agent=agent_id, error=str(exc))
                continue
            self._orphans[agent_id].discard(sid)
        if not self._orphans.get(agent_id):
            self._orphans.pop(agent_id, None)
        return len(orphans)

    # ---- persistence and audit -------------------------------------------
    async def _save(self, session: DwaSession) -> None:
        async with self._db.transaction() as s:
            await sessions.save_session(s, session, node_id=self._node_id)

    async def _audit_step(self, session: DwaSession, type_: str, details: dict[str, object]) -> None:
        await self._audit.append(AuditEventIn(
            type=type_, device_id=session.device_id, session_id=session.id,
            actor="gateway", details={**details, **self._node_details(session.id)},
        ))

    def _node_details(self, session_id: str) -> dict[str, object]:
        """A session set up here for another node: its records say which nodes (issue 18)."""
        via = self._delegated.get(session_id)
        return {"node": self._node_id, "owner_node": self._node_id, "requested_via": via} if via else {}

    async def _audit_decision(
        self, user: User, device_id: str, facts: DwaFacts | None, decision: Decision,
        source_ip: str, *, session_id: str | None = None, action: str = "dwa.open",
    ) -> None:
        await self._audit.append(AuditEventIn(
            type=event_types.POLICY_DECISION,
            outcome=Outcome.SUCCESS if decision.allow else Outcome.DENIED,
            actor=user.email, dealer_id=user.dealer_id,
            customer_id=facts.customer.id if facts else None,
            device_id=device_id, session_id=session_id, source_ip=source_ip,
            details={
                "action": action,
                "allow": decision.allow,
                "reasons": [{"code": r.code, "message": r.message} for r in decision.reasons],
                **({"session_reason": facts.reason.to_dict()} if facts and facts.reason else {}),
                "session_reason_label": reason_label_of(facts.reason if facts else None),
            },
        ))


def _settle(waiter: asyncio.Future[None], refusal: str | None) -> None:
    if waiter.done():
        return
    if refusal is None:
        waiter.set_result(None)
    else:
        waiter.set_exception(AgentRefused(refusal))


def _reason_text(decision: Decision) -> str:
    return "; ".join(f"[{r.code}] {r.message}" for r in decision.reasons) or (
        "allowed" if decision.allow else "denied"
    )


def reason_label_of(reason: SessionReason | None) -> str:
    """The reason as the audit records say it: explicit when none was given (reasons are optional
    except in ``ticket`` mode)."""
    return reason.label if reason is not None else NO_REASON


def _unknown_device(device_id: str) -> Reason:
    return Reason("device.unknown", f"no device {device_id} is visible to you")
