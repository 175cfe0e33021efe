"""The agent channel gRPC server (TLS 1.2+, HTTP/2).

One grpc.aio server with two listeners:
  * ``port``       mutual TLS: the agent channel (client cert required),
  * ``enrol_port`` server TLS only: enrolment with a one-time token.
Both listeners serve both services, but every RPC is checked against the
explicit table in ``authorisation.py``: channel methods need a certificate
that is, at call time (read from the store on every call), a current
certificate of an enrolled and unrevoked agent (so they fail on the
enrolment port); requests may only name the cert's own site, commands sent
to the cert's agent and sessions of that agent; unknown methods are
refused. Live command streams of a revoked agent are cut at once when this
server revokes it and within ``revocation_poll_s`` when another process (the
portal) does. Refusals are audited in aggregate (``DenialTally``).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError
from grpc import aio

from gateway.channel.authorisation import Rule, rule_for, site_violation
from gateway.channel.ca import (
    AgentCA,
    CsrRejected,
    PeerIdentity,
    csr_matches_certificate,
    peer_identity,
)
from gateway.channel.crl import CrlPublisher
from gateway.channel.denials import DenialTally
from gateway.channel.detached import DetachedWork
from gateway.channel.enrolment import ChannelFacts, Enroller, EnrolmentThrottle, EnrolmentThrottled
from gateway.channel.handlers import ChannelHandlers
from gateway.channel.hub import AgentHub
from gateway.channel.refusal_budget import RefusalBudget
from gateway.channel.validation import check_inventory, heartbeat_problem
from gateway.errors import BATCH_ID_MISSING
from printgate.domain import AuditEventIn, Outcome, event_types
from printgate.errors import PrintgateError
from printgate.interfaces import AuditSink
from printgate.lifecycle import Service, cancel_and_wait
from printgate.logs import get_logger
from printgate.store import channel as store
from printgate.store.db import Database
from printgate.store.outage import OutageLog, is_database_outage
from printgate.supervisor import Supervisor
from printgate.wire import MAX_MESSAGE_BYTES, RETRY_AFTER_KEY
from printgate.wire import agent_pb2 as pb
from printgate.wire import agent_pb2_grpc as pb_grpc

log = get_logger(__name__)
RELAY_REFUSED = event_types.AGENT_RELAY_CHANNEL_REFUSED
STREAM_TAKEN_OVER = event_types.AGENT_STREAM_TAKEN_OVER
PRESENCE_RESET = event_types.AGENT_PRESENCE_RESET_AT_START
REVOCATIONS_TASK = "channel-revocations"
REFUSAL_DETAIL_MAX = 300
DB_RETRY_AFTER_S = 5  # the retry hint of an UNAVAILABLE answer while the database is away
T = TypeVar("T")

SERVER_OPTIONS = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 2_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.http2.max_ping_strikes", 0),  # agents ping every 20 s; never GOAWAY them for it
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]


class _RefuseUnknownMethods(aio.ServerInterceptor):
    """Deny-by-default: a method missing from the authorisation table never reaches a handler."""

    def __init__(self, on_refused: Callable[[str], None]) -> None:
        self._on_refused = on_refused

    async def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        method = handler_call_details.method
        if rule_for(method) is None:
            self._on_refused(method)

            async def refuse(_request: Any, context: aio.ServicerContext) -> None:
                await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                    f"method {method} is not part of the agent channel")

            return grpc.unary_unary_rpc_method_handler(refuse)
        handler = await continuation(handler_call_details)
        if method == _C + "UploadReadings" and handler is not None:  # an unreadable message: INVALID_ARGUMENT
            return handler._replace(request_deserializer=_readings_or_undecodable)
        return handler


class _Undecodable:
    """An upload whose bytes are no ``ReadingsBatch`` (invalid UTF-8 in a text field, say)."""

    def __init__(self, why: str) -> None:
        self.why = why


def _readings_or_undecodable(raw: bytes) -> pb.ReadingsBatch | _Undecodable:
    try:
        return pb.ReadingsBatch.FromString(raw)
    except DecodeError as exc:
        return _Undecodable(str(exc)[:200])


class AgentChannelServer(Service):
    """``async with AgentChannelServer(...) as server``; ``server.port``/``server.enrol_port``."""

    def __init__(
        self, host: str, port: int, *, ca: AgentCA, db: Database, audit: AuditSink,
        hub: AgentHub, handlers: ChannelHandlers, enrol_port: int = 0,
        facts: ChannelFacts | None = None, cert_ttl: timedelta = timedelta(hours=24),
        server_names: list[str] | None = None, revocation_poll_s: float = 1.0,
        enrol_throttle: EnrolmentThrottle | None = None, denials: DenialTally | None = None,
        crl: CrlPublisher | None = None, supervisor: Supervisor | None = None,
        node_id: str | None = None,
    ) -> None:
        self.host = host
        self._node_id = node_id  # several gateway nodes: agents another live node holds stay online
        self._supervisor = supervisor  # runs the revocation watcher (health shown, restarted) when given
        self.port = port
        self.enrol_port = enrol_port
        self._ca, self._db, self._audit, self._hub, self._handlers = ca, db, audit, hub, handlers
        self._facts = facts or ChannelFacts()
        self._cert_ttl = cert_ttl
        self._names = server_names or [host, "localhost", "127.0.0.1"]
        self._poll_s = revocation_poll_s
        self._revoked: set[str] = set()
        self._revoked_agents: set[str] = set()
        self._crl = crl
        self._own_denials = denials is None
        self.denials = denials or DenialTally(audit)
        self._server: aio.Server | None = None
        self._refusal_budget = RefusalBudget()
        self.db_outage = OutageLog("channel")
        self.detached = DetachedWork()  # calls' work a cancelling client cannot cut mid-transaction
        self._watcher: asyncio.Task[None] | None = None
        self._enroller = Enroller(ca=ca, db=db, audit=audit, verify_key=lambda: hub.verify_key_raw,
                                  facts=self._facts, cert_ttl=cert_ttl, throttle=enrol_throttle,
                                  denials=self.denials)

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def enrol_target(self) -> str:
        return f"{self.host}:{self.enrol_port}"

    # ---- lifecycle ----------------------------------------------------------
    async def start(self) -> None:
        if self._own_denials:
            await self.denials.start()
        await self._clear_stale_presence()
        await self._refresh_revocations()
        tls = self._ca.issue_server_certificate(self._names)
        pair = [(tls.key_pem, tls.cert_pem)]
        mtls = grpc.ssl_server_credentials(pair, root_certificates=self._ca.cert_pem,
                                           require_client_auth=True)
        server_only = grpc.ssl_server_credentials(pair)
        server = aio.server(interceptors=[_RefuseUnknownMethods(self._count_unknown)],
                            options=SERVER_OPTIONS)
        pb_grpc.add_EnrolmentServicer_to_server(_EnrolmentService(self), server)
        pb_grpc.add_AgentChannelServicer_to_server(_ChannelService(self), server)
        self.port = server.add_secure_port(f"{self.host}:{self.port}", mtls)
        self.enrol_port = server.add_secure_port(f"{self.host}:{self.enrol_port}", server_only)
        await server.start()
        self._server = server
        if self._supervisor is not None:
            self._supervisor.add(REVOCATIONS_TASK, self._watch_revocations)
        else:
            self._watcher = asyncio.create_task(self._watch_revocations(), name=REVOCATIONS_TASK)
        self._hub.add_presence_listener(self._handlers.on_presence)
        log.info("channel.grpc.started", port=self.port, enrol_port=self.enrol_port)

    async def aclose(self) -> None:
        await cancel_and_wait(self._watcher)
        self._watcher = None
        if self._server is not None:
            for agent in list(self._hub.online_agents()):
                self._hub.cut_agent(agent, "gateway shutting down")
            await self._server.stop(grace=1.0)
            self._server = None
            await self.detached.drain(timeout=5.0)
            self._hub.remove_presence_listener(self._handlers.on_presence)
            log.info("channel.grpc.stopped", port=self.port)
        if self._own_denials:
            await self.denials.aclose()

    # ---- revocation ---------------------------------------------------------
    async def _refresh_revocations(self) -> None:
        async with self._db.session() as s:
            revoked = await store.revoked_serials(s)
            agents = await store.revoked_agents(s)
            listed = await store.revoked_serials(s, valid_at=utcnow()) if self._crl is not None else set()
        fresh, fresh_agents = revoked - self._revoked, agents - self._revoked_agents
        self._revoked, self._revoked_agents = revoked, agents
        if fresh:
            for agent in self._hub.cut_serials(fresh, "agent certificate revoked"):
                log.info("channel.stream_cut", agent=agent, reason="revoked")
        for agent in fresh_agents:  # streams opened with a certificate the revocation missed
            self._hub.cut_agent(agent, "agent certificate revoked")
            await self._hub.set_mqtt_presence(agent, False)
        if self._crl is not None and self._crl.due(listed):  # expired certificates need no listing
            self._crl.publish(listed)

    async def _clear_stale_presence(self) -> None:
        """No agent is connected to a process that just started: the ones a previous process (killed,
        crashed) left marked online are set offline until they reconnect; audited in aggregate."""
        async with self._db.transaction() as s:
            stale = await store.mark_all_offline(s, except_held_by_live_nodes_other_than=self._node_id)
        if stale:
            log.warning("channel.stale_presence_cleared", agents=len(stale))
            await self._audit.append(AuditEventIn(
                type=PRESENCE_RESET, actor="system",
                details={"agents": len(stale), "agent_ids": stale[:50],
                         "reason": "the cloud started; agents marked online by a previous process are "
                                   "offline until they reconnect"}))

    async def attach_crl(self, crl: CrlPublisher) -> None:
        """Keep ``crl`` (the MQTT broker's) up to date from now on; written at once."""
        self._crl = crl
        async with self._db.session() as s:
            crl.publish(await store.revoked_serials(s, valid_at=utcnow()))

    async def _watch_revocations(self) -> None:
        while True:
            await asyncio.sleep(self._poll_s)
            try:
                await self._refresh_revocations()
            except Exception as exc:  # keep watching; the store may be briefly away
                if is_database_outage(exc):
                    self.db_outage.failed(exc)  # logged once per outage
                else:
                    log.warning("channel.revocation_refresh_failed", error=str(exc))
                if self._supervisor is not None:  # visible: revocations are not being applied meanwhile
                    self._supervisor.degrade(REVOCATIONS_TASK, f"revocations not refreshed: "
                                                               f"{type(exc).__name__}: {exc}")
            else:
                self.db_outage.recovered()
                if self._supervisor is not None:
                    self._supervisor.recovered(REVOCATIONS_TASK)

    async def run_unary(self, context: aio.ServicerContext, work: Coroutine[Any, Any, T]) -> T:
        """A unary call's work, detached; the database being away answers UNAVAILABLE with a retry
        hint (the agent keeps its readings and retries) and is logged once per outage, not per call."""
        try:
            return await self.detached.run(work)
        except Exception as exc:
            if not is_database_outage(exc):
                raise
            self.db_outage.failed(exc)
            await context.abort(grpc.StatusCode.UNAVAILABLE,
                                f"the printgate database is unavailable; retry in {DB_RETRY_AFTER_S} s",
                                trailing_metadata=((RETRY_AFTER_KEY, str(DB_RETRY_AFTER_S)),))
            raise

    async def revoke_agent(self, agent_id: str, *, reason: str, actor: str) -> int:
        """Revoke all certs of ``agent_id`` now; cut its live stream; audit."""
        async with self._db.transaction() as s:
            count = await store.revoke_agent(s, agent_id, reason=reason)
        self._hub.cut_agent(agent_id, "agent certificate revoked")
        await self._refresh_revocations()
        await self._audit.append(AuditEventIn(
            type=event_types.AGENT_REVOKED, actor=actor, details={"agent_id": agent_id, "reason": reason,
                                                        "certificates": count}))
        return count

    async def audit_relay_refusals(self, agent_id: str, refusals: list[pb.RelayRefusal], *,
                                   source_ip: str | None = None) -> None:
        """Channels a relay tried to open towards the agent, refused by it: a misbehaving or
        impersonated relay. A refusal must name one of the agent's own sessions: one naming
        none, or a session that is not the agent's (unknown ones included), is counted as a
        denial (``relay_refusal_without_session`` / ``foreign_session``, once per heartbeat)
        and dropped. Of the rest, the first ``RefusalBudget`` ones per agent and window are
        audited each at once (detail capped at ``REFUSAL_DETAIL_MAX``); the others are
        counted into one aggregated ``agent.relay_channel_refused`` record per agent and window."""
        without = [r for r in refusals if not r.session_id]
        named = {r.session_id[:64] for r in refusals if r.session_id}
        async with self._db.session() as s:
            foreign = await store.foreign_sessions(s, agent_id, named)
        if without:
            self.denials.count(agent_id=agent_id, reason="relay_refusal_without_session", source_ip=source_ip,
                               method=_C + "Heartbeat")
        if foreign:
            self.denials.count(agent_id=agent_id, reason="foreign_session", source_ip=source_ip,
                               method=_C + "Heartbeat")
        refusals = [r for r in refusals if r.session_id and r.session_id[:64] not in foreign]
        aggregated = 0
        for r in refusals:
            if not self._refusal_budget.take(agent_id):
                aggregated += 1
                self.denials.count(agent_id=agent_id, reason="relay_refusals_over_budget", method=r.kind[:64],
                                   source_ip=source_ip, event_type=RELAY_REFUSED)
                continue
            await self._audit.append(AuditEventIn(
                type=RELAY_REFUSED, outcome=Outcome.DENIED, actor=f"agent:{agent_id}",
                session_id=r.session_id[:64],
                details={"agent_id": agent_id, "kind": r.kind[:64], "detail": r.detail[:REFUSAL_DETAIL_MAX],
                         "at_ms": r.at_ms},
            ))
        log.warning("channel.relay_refusals", agent=agent_id, count=len(refusals), aggregated=aggregated,
                    kinds=sorted({r.kind[:64] for r in refusals})[:10], foreign_sessions=len(foreign),
                    without_session=len(without))

    # ---- per-RPC authorisation ----------------------------------------------
    def _count_unknown(self, method: str) -> None:
        self.denials.count(reason="unknown_method", method=method)

    async def authorise(self, method: str, request: object, context: aio.ServicerContext) -> PeerIdentity:
        """The calling agent, after the checks of ``method``'s rule (aborts the call otherwise)."""
        return (await self.authorise_with_cert(method, request, context))[0]

    async def authorise_with_cert(self, method: str, request: object,
                                  context: aio.ServicerContext) -> tuple[PeerIdentity, bytes]:
        rule: Rule | None = rule_for(method)
        if rule is None:  # the interceptor already refuses these; belt and braces
            self.denials.count(reason="unknown_method", method=method, source_ip=_peer_ip(context))
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"method {method} is not allowed")
            raise AssertionError("unreachable")
        certs = context.auth_context().get("x509_pem_cert") or []
        if not certs:
            await self.deny(context, method, None, "no_client_certificate", grpc.StatusCode.UNAUTHENTICATED,
                            "an agent client certificate is required: enrol the agent first")
        try:
            peer = peer_identity(certs[0])
        except PrintgateError as exc:
            await self.deny(context, method, None, "not_agent_certificate", grpc.StatusCode.UNAUTHENTICATED,
                            exc.message)
            raise
        if peer.serial in self._revoked or peer.agent_id in self._revoked_agents:
            await self.deny(context, method, peer, "agent_revoked", grpc.StatusCode.PERMISSION_DENIED,
                            f"certificate of agent {peer.agent_id} is revoked: re-enrol with a new token")
        async with self._db.session() as s:
            why = await store.certificate_standing(s, peer.serial, agent_id=peer.agent_id, site_id=peer.site_id)
        if why is not None:
            hint = ("is revoked: re-enrol with a new token" if "revoked" in why
                    else "is not a current certificate of this agent")
            await self.deny(context, method, peer, why, grpc.StatusCode.PERMISSION_DENIED,
                            f"certificate {peer.serial} of agent {peer.agent_id} {hint}")
        violation = site_violation(rule, request, peer.site_id)
        if violation is not None:
            await self.deny(context, method, peer, "foreign_site", grpc.StatusCode.PERMISSION_DENIED, violation)
        self._hub.last_seen[peer.agent_id] = time.time()
        return peer, certs[0]

    async def deny(self, context: aio.ServicerContext, method: str, peer: PeerIdentity | None,
                   reason: str, status: grpc.StatusCode, message: str) -> None:
        """Refuse the call: counted for the aggregated audit record, then aborted."""
        self.denials.count(agent_id=peer.agent_id if peer else None, reason=reason, method=method,
                           source_ip=_peer_ip(context))
        await context.abort(status, message)

    # ---- what the services call -------------------------------------------------
    async def enroll(self, request: pb.EnrollRequest, context: aio.ServicerContext) -> pb.EnrollResponse:
        try:
            return await self._enroller.enroll(request, source_ip=_peer_ip(context))
        except EnrolmentThrottled as exc:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, exc.message)
            raise
        except PrintgateError as exc:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, exc.message)
            raise

    async def renew(self, peer: PeerIdentity, cert_pem: bytes, request: pb.RenewRequest,
                    context: aio.ServicerContext) -> pb.RenewResponse:
        """A new certificate for the caller's key (another key only with an admin's re-key grant).

        Issued in one transaction that first locks the agent's row if it is not revoked
        (``store.reserve_agent_for_issue``), so a concurrent revocation either refuses this
        renewal or revokes the certificate it issued: never a valid certificate of a revoked agent.
        """
        method = _C + "RenewCertificate"
        try:
            same_key = csr_matches_certificate(request.csr_pem, cert_pem)
            issued = self._ca.issue_agent_certificate(
                request.csr_pem, agent_id=peer.agent_id, site_id=peer.site_id, ttl=self._cert_ttl)
        except CsrRejected as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)
            raise
        refused: str | None = None
        granted_by: str | None = None
        async with self._db.transaction() as s:
            if not await store.reserve_agent_for_issue(s, peer.agent_id):
                refused = "agent_revoked"
            elif not same_key:
                granted_by = await store.take_rekey_grant(s, peer.agent_id)
                refused = None if granted_by else "rekey_not_authorised"
            if refused is None:
                await store.record_certificate(s, issued.record)
        if refused == "agent_revoked":
            await self.deny(context, method, peer, refused, grpc.StatusCode.PERMISSION_DENIED,
                            f"agent {peer.agent_id} is revoked: re-enrol with a new token")
        if refused is not None:
            await self.deny(context, method, peer, refused, grpc.StatusCode.PERMISSION_DENIED,
                            "the request is for a different key than the current certificate's: "
                            "renew with the same key, or ask an admin to authorise a re-key "
                            f"(printgate agent authorise-rekey {peer.agent_id})")
        details: dict[str, object] = {"agent_id": peer.agent_id, "serial": issued.record.serial,
                                      "previous": peer.serial}
        if granted_by is not None:
            details |= {"rekeyed": True, "authorised_by": granted_by}
        await self._audit.append(AuditEventIn(
            type=event_types.AGENT_CERTIFICATE_REKEYED if granted_by else event_types.AGENT_CERTIFICATE_RENEWED,
            actor=f"agent:{peer.agent_id}", details=details))
        return pb.RenewResponse(client_cert_pem=issued.pem,
                                cert_not_after_ms=int(issued.record.not_after.timestamp() * 1000))

    async def command_result(self, peer: PeerIdentity, request: pb.CommandResult,
                             context: aio.ServicerContext) -> pb.Ack:
        """A result is accepted only for a command this gateway sent to the caller's agent."""
        owner = self._hub.command_owner(request.command_id)
        if owner != peer.agent_id:
            await self.deny(context, _C + "ReportCommandResult", peer, "foreign_command",
                            grpc.StatusCode.PERMISSION_DENIED,
                            f"command {request.command_id[:64]!r} was not sent to agent {peer.agent_id}")
        await self._handlers.on_command_result(peer.agent_id, request)
        return pb.Ack(id=request.command_id)

    async def readings(self, peer: PeerIdentity, request: pb.ReadingsBatch) -> pb.Ack:
        """Hand the batch to the readings handler (``fleet`` ingest: idempotent per batch id,
        answers once stored); its answer is the acknowledgement."""
        if not request.batch_id:
            raise PrintgateError("readings batch has no batch id", code=BATCH_ID_MISSING)
        return await self._handlers.on_readings(peer.agent_id, request)

    @property
    def hub(self) -> AgentHub:
        return self._hub

    @property
    def handlers(self) -> ChannelHandlers:
        return self._handlers


def _peer_ip(context: aio.ServicerContext) -> str | None:
    peer = context.peer() or ""
    if peer.startswith("ipv4:"):
        return peer[5:].rsplit(":", 1)[0]
    if peer.startswith("ipv6:"):
        return peer[5:].rsplit(":", 1)[0].strip("[]")
    return None


_E = "/printgate.agent.v1.Enrolment/"
_C = "/printgate.agent.v1.AgentChannel/"


class _EnrolmentService(pb_grpc.EnrolmentServicer):
    def __init__(self, server: AgentChannelServer) -> None:
        self._s = server

    async def Enroll(self, request: pb.EnrollRequest, context: aio.ServicerContext) -> pb.EnrollResponse:
        return await self._s.detached.run(self._s.enroll(request, context))


class _ChannelService(pb_grpc.AgentChannelServicer):
    """Each unary call's work runs detached (``DetachedWork``): a client cancelling it cannot
    interrupt a database transaction half-way."""

    def __init__(self, server: AgentChannelServer) -> None:
        self._s = server

    async def Heartbeat(self, request: pb.HeartbeatRequest, context: aio.ServicerContext) -> pb.HeartbeatResponse:
        return await self._s.run_unary(context, self._heartbeat(request, context))

    async def _heartbeat(self, request: pb.HeartbeatRequest, context: aio.ServicerContext) -> pb.HeartbeatResponse:
        peer = await self._s.authorise(_C + "Heartbeat", request, context)
        problem = heartbeat_problem(request)
        if problem is not None:
            await self._s.deny(context, _C + "Heartbeat", peer, "invalid_heartbeat",
                               grpc.StatusCode.INVALID_ARGUMENT, problem)
        if request.relay_refusals:
            await self._s.audit_relay_refusals(peer.agent_id, list(request.relay_refusals),
                                               source_ip=_peer_ip(context))
        await self._s.handlers.on_heartbeat(peer.agent_id, request)
        return pb.HeartbeatResponse(server_time_ms=int(time.time() * 1000))

    async def UploadInventory(self, request: pb.Inventory, context: aio.ServicerContext) -> pb.Ack:
        return await self._s.run_unary(context, self._inventory(request, context))

    async def _inventory(self, request: pb.Inventory, context: aio.ServicerContext) -> pb.Ack:
        method = _C + "UploadInventory"
        peer = await self._s.authorise(method, request, context)
        checked = check_inventory(request)
        if checked.problem is not None:
            await self._s.deny(context, method, peer, "invalid_inventory", grpc.StatusCode.INVALID_ARGUMENT,
                               checked.problem)
        if checked.refused:  # each bad device refused on its own; the agent reads why in the trailers
            for _ in checked.refused:
                self._s.denials.count(agent_id=peer.agent_id, reason="invalid_device", method=method,
                                      source_ip=_peer_ip(context))
            log.warning("channel.inventory.devices_refused", agent=peer.agent_id, refused=len(checked.refused),
                        reasons=checked.refused[:5])
            why = "; ".join(checked.refused[:10])[:2000].encode("ascii", "replace").decode()
            context.set_trailing_metadata((("printgate-refused-devices", why),))
        await self._s.handlers.on_inventory(peer.agent_id, checked.devices)
        return pb.Ack(id=str(request.scanned_at_ms))

    async def UploadReadings(self, request: pb.ReadingsBatch, context: aio.ServicerContext) -> pb.Ack:
        return await self._s.run_unary(context, self._readings(request, context))

    async def _readings(self, request: pb.ReadingsBatch | _Undecodable, context: aio.ServicerContext) -> pb.Ack:
        undecodable = request if isinstance(request, _Undecodable) else None
        batch = pb.ReadingsBatch() if isinstance(request, _Undecodable) else request
        peer = await self._s.authorise(_C + "UploadReadings", batch, context)
        if undecodable is not None:
            log.warning("channel.readings.undecodable", agent=peer.agent_id, error=undecodable.why)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, (
                f"the upload is not a valid ReadingsBatch message ({undecodable.why}; e.g. a text field "
                "holding invalid UTF-8): nothing stored; this batch can never be stored as sent"))
        try:
            return await self._s.readings(peer, batch)
        except PrintgateError as exc:
            retry_after = getattr(exc, "retry_after_s", None)
            if retry_after is not None:  # ingest is behind: the agent keeps the batch and slows down
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, exc.message, trailing_metadata=(
                    (RETRY_AFTER_KEY, f"{retry_after:g}"),))
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)
            raise
        except Exception as exc:
            if is_database_outage(exc) or isinstance(exc, asyncio.CancelledError):
                raise  # UNAVAILABLE with a retry hint (run_unary)
            error_id = secrets.token_hex(6)  # the details (SQL, parameters) stay in the cloud's log
            log.exception("channel.readings.failed", agent=peer.agent_id, batch=batch.batch_id[:64],
                          error_id=error_id)
            await context.abort(grpc.StatusCode.INTERNAL, (
                f"the cloud could not store readings batch {batch.batch_id[:64]!r} (error id {error_id}; "
                "the operator finds the cause in the cloud log): nothing stored, keep the batch and retry later"))
            raise

    async def ReportCommandResult(self, request: pb.CommandResult, context: aio.ServicerContext) -> pb.Ack:
        return await self._s.run_unary(context, self._command_result(request, context))

    async def _command_result(self, request: pb.CommandResult, context: aio.ServicerContext) -> pb.Ack:
        peer = await self._s.authorise(_C + "ReportCommandResult", request, context)
        return await self._s.command_result(peer, request, context)

    async def RenewCertificate(self, request: pb.RenewRequest, context: aio.ServicerContext) -> pb.RenewResponse:
        return await self._s.run_unary(context, self._renew(request, context))

    async def _renew(self, request: pb.RenewRequest, context: aio.ServicerContext) -> pb.RenewResponse:
        peer, cert_pem = await self._s.authorise_with_cert(_C + "RenewCertificate", request, context)
        return await self._s.renew(peer, cert_pem, request, context)

    async def CommandStream(
        self, request: pb.CommandStreamRequest, context: aio.ServicerContext
    ) -> AsyncIterator[pb.SignedCommand]:
        peer = await self._s.authorise(_C + "CommandStream", request, context)
        hub = self._s.hub
        stream = await hub.open_stream(peer.agent_id, peer.serial, peer_ip=_peer_ip(context))
        log.info("channel.stream.opened", agent=peer.agent_id, took_over=stream.took_over)
        if stream.took_over:  # audited in aggregate: two holders of one key fighting cannot flood the trail
            self._s.denials.count(agent_id=peer.agent_id, reason="command_stream_taken_over",
                                  method=_C + "CommandStream", source_ip=_peer_ip(context),
                                  event_type=STREAM_TAKEN_OVER)
            log.warning("channel.stream.taken_over", agent=peer.agent_id, serial=peer.serial, peer=_peer_ip(context))
        try:
            await context.send_initial_metadata(())  # tells the agent the stream is live
            while True:
                item = await stream.queue.get()
                if item is None:
                    await context.abort(grpc.StatusCode.ABORTED if stream.taken_over
                                        else grpc.StatusCode.PERMISSION_DENIED
                                        if "revoked" in (stream.cut_reason or "")
                                        else grpc.StatusCode.UNAVAILABLE,
                                        stream.cut_reason or "stream closed")
                    return
                yield item
        finally:
            await hub.close_stream(stream)
            log.info("channel.stream.closed", agent=peer.agent_id, reason=stream.cut_reason)


def utcnow() -> datetime:
    return datetime.now(UTC)
