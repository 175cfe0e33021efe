"""The agent channel gRPC server (TLS 1.2+, HTTP/2).

One grpc.aio server with two listeners:
  * ``port``       mutual TLS: the agent channel (client cert required),
  * ``enrol_port`` server TLS only: enrolment with a one-time token.
Both listeners serve both services, but every RPC is checked against the
explicit table in ``authorisation.py``: channel methods need a valid,
unrevoked agent certificate (so they fail on the enrolment port), requests
may only name the cert's own site, unknown methods are refused. Revoked
certificates are refused and their live command streams cut within
``revocation_poll_s`` (revocations made by other processes are read from the
store).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from grpc import aio

from gateway.channel.authorisation import Rule, rule_for, site_violation
from gateway.channel.ca import AgentCA, PeerIdentity, peer_identity
from gateway.channel.enrolment import ChannelFacts, Enroller, EnrolmentThrottled, FailureThrottle
from gateway.channel.handlers import ChannelHandlers
from gateway.channel.hub import AgentHub
from printgate.domain import AuditEventIn, Outcome
from printgate.errors import PrintgateError
from printgate.interfaces import AuditSink
from printgate.lifecycle import Service, cancel_and_wait
from printgate.logs import get_logger
from printgate.store import channel as store
from printgate.store.db import Database
from printgate.wire import agent_pb2 as pb
from printgate.wire import agent_pb2_grpc as pb_grpc

log = get_logger(__name__)
MAX_REFUSALS_AUDITED = 50  # relay refusals per heartbeat; an agent cannot flood the audit trail

SERVER_OPTIONS = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 2_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.http2.max_ping_strikes", 0),  # agents ping every 20 s; never GOAWAY them for it
    ("grpc.max_receive_message_length", 8 * 1024 * 1024),
]


class _RefuseUnknownMethods(aio.ServerInterceptor):
    """Deny-by-default: a method missing from the authorisation table never reaches a handler."""

    def __init__(self, on_refused: Callable[[str], Awaitable[None]]) -> None:
        self._on_refused = on_refused

    async def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        method = handler_call_details.method
        if rule_for(method) is None:
            await self._on_refused(method)

            async def refuse(_request: Any, context: aio.ServicerContext) -> None:
                await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                    f"method {method} is not part of the agent channel")

            return grpc.unary_unary_rpc_method_handler(refuse)
        return await continuation(handler_call_details)


class AgentChannelServer(Service):
    """``async with AgentChannelServer(...) as server``; ``server.port``/``server.enrol_port``."""

    def __init__(
        self, host: str, port: int, *, ca: AgentCA, db: Database, audit: AuditSink,
        hub: AgentHub, handlers: ChannelHandlers, enrol_port: int = 0,
        facts: ChannelFacts | None = None, cert_ttl: timedelta = timedelta(hours=24),
        server_names: list[str] | None = None, revocation_poll_s: float = 1.0,
        enrol_throttle: FailureThrottle | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.enrol_port = enrol_port
        self._ca, self._db, self._audit, self._hub, self._handlers = ca, db, audit, hub, handlers
        self._facts = facts or ChannelFacts()
        self._cert_ttl = cert_ttl
        self._names = server_names or [host, "localhost", "127.0.0.1"]
        self._poll_s = revocation_poll_s
        self._revoked: set[str] = set()
        self._known: set[str] = set()
        self._server: aio.Server | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._enroller = Enroller(ca=ca, db=db, audit=audit, verify_key=hub.verify_key_raw,
                                  facts=self._facts, cert_ttl=cert_ttl, throttle=enrol_throttle)

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def enrol_target(self) -> str:
        return f"{self.host}:{self.enrol_port}"

    # ---- lifecycle ----------------------------------------------------------
    async def start(self) -> None:
        await self._refresh_revocations()
        tls = self._ca.issue_server_certificate(self._names)
        pair = [(tls.key_pem, tls.cert_pem)]
        mtls = grpc.ssl_server_credentials(pair, root_certificates=self._ca.cert_pem,
                                           require_client_auth=True)
        server_only = grpc.ssl_server_credentials(pair)
        server = aio.server(interceptors=[_RefuseUnknownMethods(self._audit_unknown)],
                            options=SERVER_OPTIONS)
        pb_grpc.add_EnrolmentServicer_to_server(_EnrolmentService(self), server)
        pb_grpc.add_AgentChannelServicer_to_server(_ChannelService(self), server)
        self.port = server.add_secure_port(f"{self.host}:{self.port}", mtls)
        self.enrol_port = server.add_secure_port(f"{self.host}:{self.enrol_port}", server_only)
        await server.start()
        self._server = server
        self._watcher = asyncio.create_task(self._watch_revocations(), name="channel-revocations")
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
            self._hub.remove_presence_listener(self._handlers.on_presence)
            log.info("channel.grpc.stopped", port=self.port)

    # ---- revocation ---------------------------------------------------------
    async def _refresh_revocations(self) -> None:
        async with self._db.session() as s:
            revoked = await store.revoked_serials(s)
        fresh = revoked - self._revoked
        self._revoked = revoked
        self._known -= revoked
        if fresh:
            for agent in self._hub.cut_serials(fresh, "agent certificate revoked"):
                log.info("channel.stream_cut", agent=agent, reason="revoked")

    async def _watch_revocations(self) -> None:
        while True:
            await asyncio.sleep(self._poll_s)
            try:
                await self._refresh_revocations()
            except Exception as exc:  # keep watching; the store may be briefly away
                log.warning("channel.revocation_refresh_failed", error=str(exc))

    async def revoke_agent(self, agent_id: str, *, reason: str, actor: str) -> int:
        """Revoke all certs of ``agent_id`` now; cut its live stream; audit."""
        async with self._db.transaction() as s:
            count = await store.revoke_agent(s, agent_id, reason=reason)
        self._hub.cut_agent(agent_id, "agent certificate revoked")
        await self._refresh_revocations()
        await self._audit.append(AuditEventIn(
            type="agent.revoked", actor=actor, details={"agent_id": agent_id, "reason": reason,
                                                        "certificates": count}))
        return count

    async def audit_relay_refusals(self, agent_id: str, refusals: list[pb.RelayRefusal]) -> None:
        """Channels a relay tried to open towards the agent, refused by it: a misbehaving or
        impersonated relay. Each is audited as the agent reported it (at most
        ``MAX_REFUSALS_AUDITED`` per heartbeat, then one line with the count of the rest)."""
        for r in refusals[:MAX_REFUSALS_AUDITED]:
            await self._audit.append(AuditEventIn(
                type="agent.relay_channel_refused", outcome=Outcome.DENIED, actor=f"agent:{agent_id}",
                session_id=r.session_id[:64] or None,
                details={"kind": r.kind[:64], "detail": r.detail[:500], "at_ms": r.at_ms},
            ))
        if len(refusals) > MAX_REFUSALS_AUDITED:
            await self._audit.append(AuditEventIn(
                type="agent.relay_channel_refused", outcome=Outcome.DENIED, actor=f"agent:{agent_id}",
                details={"kind": "summary", "more_refusals": len(refusals) - MAX_REFUSALS_AUDITED},
            ))
        log.warning("channel.relay_refusals", agent=agent_id, count=len(refusals),
                    kinds=sorted({r.kind[:64] for r in refusals}))

    # ---- per-RPC authorisation ----------------------------------------------
    async def _audit_unknown(self, method: str) -> None:
        await self._audit.append(AuditEventIn(
            type="agent.rpc.denied", outcome=Outcome.DENIED, details={"method": method[:200],
                                                                       "reason": "unknown_method"}))

    async def authorise(self, method: str, request: object, context: aio.ServicerContext) -> PeerIdentity:
        rule: Rule | None = rule_for(method)
        if rule is None:  # the interceptor already refuses these; belt and braces
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"method {method} is not allowed")
            raise AssertionError("unreachable")
        certs = context.auth_context().get("x509_pem_cert") or []
        if not certs:
            await self._deny(context, method, None, grpc.StatusCode.UNAUTHENTICATED,
                             "an agent client certificate is required: enrol the agent first")
        try:
            peer = peer_identity(certs[0])
        except PrintgateError as exc:
            await self._deny(context, method, None, grpc.StatusCode.UNAUTHENTICATED, exc.message)
            raise
        if peer.serial in self._revoked:
            await self._deny(context, method, peer, grpc.StatusCode.PERMISSION_DENIED,
                             f"certificate of agent {peer.agent_id} is revoked: re-enrol with a new token")
        if peer.serial not in self._known:
            async with self._db.session() as s:
                record = await store.get_certificate(s, peer.serial)
            if record is None or record.revoked_at is not None or record.agent_id != peer.agent_id:
                await self._deny(context, method, peer, grpc.StatusCode.PERMISSION_DENIED,
                                 f"certificate {peer.serial} is not a current certificate of {peer.agent_id}")
            self._known.add(peer.serial)
        why = site_violation(rule, request, peer.site_id)
        if why is not None:
            await self._deny(context, method, peer, grpc.StatusCode.PERMISSION_DENIED, why)
        self._hub.last_seen[peer.agent_id] = time.time()
        return peer

    async def _deny(self, context: aio.ServicerContext, method: str, peer: PeerIdentity | None,
                    status: grpc.StatusCode, message: str) -> None:
        await self._audit.append(AuditEventIn(
            type="agent.rpc.denied", outcome=Outcome.DENIED,
            actor=f"agent:{peer.agent_id}" if peer else None, source_ip=_peer_ip(context),
            details={"method": method, "reason": message}))
        log.warning("channel.rpc_denied", method=method, agent=peer.agent_id if peer else None,
                    reason=message)
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

    async def renew(self, peer: PeerIdentity, request: pb.RenewRequest,
                    context: aio.ServicerContext) -> pb.RenewResponse:
        try:
            issued = self._ca.issue_agent_certificate(
                request.csr_pem, agent_id=peer.agent_id, site_id=peer.site_id, ttl=self._cert_ttl)
        except PrintgateError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)
            raise
        async with self._db.transaction() as s:
            await store.record_certificate(s, issued.record)
        await self._audit.append(AuditEventIn(
            type="agent.certificate.renewed", actor=f"agent:{peer.agent_id}",
            details={"serial": issued.record.serial, "previous": peer.serial}))
        return pb.RenewResponse(client_cert_pem=issued.pem,
                                cert_not_after_ms=int(issued.record.not_after.timestamp() * 1000))

    async def readings(self, peer: PeerIdentity, request: pb.ReadingsBatch) -> pb.Ack:
        if not request.batch_id:
            raise PrintgateError("readings batch has no batch id", code="batch_id_missing")
        async with self._db.session() as s:
            seen = await store.batch_processed(s, peer.agent_id, request.batch_id)
        if seen:
            return pb.Ack(id=request.batch_id, duplicate=True)
        await self._handlers.on_readings(peer.agent_id, request.batch_id, request.payload_json)
        async with self._db.transaction() as s:
            fresh = await store.mark_batch_processed(s, peer.agent_id, request.batch_id)
        return pb.Ack(id=request.batch_id, duplicate=not fresh)

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
        return await self._s.enroll(request, context)


class _ChannelService(pb_grpc.AgentChannelServicer):
    def __init__(self, server: AgentChannelServer) -> None:
        self._s = server

    async def Heartbeat(self, request: pb.HeartbeatRequest, context: aio.ServicerContext) -> pb.HeartbeatResponse:
        peer = await self._s.authorise(_C + "Heartbeat", request, context)
        if request.relay_refusals:
            await self._s.audit_relay_refusals(peer.agent_id, list(request.relay_refusals))
        return pb.HeartbeatResponse(server_time_ms=int(time.time() * 1000))

    async def UploadInventory(self, request: pb.Inventory, context: aio.ServicerContext) -> pb.Ack:
        peer = await self._s.authorise(_C + "UploadInventory", request, context)
        await self._s.handlers.on_inventory(peer.agent_id, list(request.devices))
        return pb.Ack(id=str(request.scanned_at_ms))

    async def UploadReadings(self, request: pb.ReadingsBatch, context: aio.ServicerContext) -> pb.Ack:
        peer = await self._s.authorise(_C + "UploadReadings", request, context)
        try:
            return await self._s.readings(peer, request)
        except PrintgateError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)
            raise

    async def ReportCommandResult(self, request: pb.CommandResult, context: aio.ServicerContext) -> pb.Ack:
        peer = await self._s.authorise(_C + "ReportCommandResult", request, context)
        await self._s.handlers.on_command_result(peer.agent_id, request)
        return pb.Ack(id=request.command_id)

    async def RenewCertificate(self, request: pb.RenewRequest, context: aio.ServicerContext) -> pb.RenewResponse:
        peer = await self._s.authorise(_C + "RenewCertificate", request, context)
        return await self._s.renew(peer, request, context)

    async def CommandStream(
        self, request: pb.CommandStreamRequest, context: aio.ServicerContext
    ) -> AsyncIterator[pb.SignedCommand]:
        peer = await self._s.authorise(_C + "CommandStream", request, context)
        hub = self._s.hub
        stream = await hub.open_stream(peer.agent_id, peer.serial, peer_ip=_peer_ip(context))
        log.info("channel.stream.opened", agent=peer.agent_id)
        try:
            await context.send_initial_metadata(())  # tells the agent the stream is live
            while True:
                item = await stream.queue.get()
                if item is None:
                    await context.abort(grpc.StatusCode.PERMISSION_DENIED
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
