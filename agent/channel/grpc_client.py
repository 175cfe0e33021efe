"""The agent's gRPC channel to the gateway (mTLS, HTTP/2, optional HTTP CONNECT proxy).

``GrpcChannel`` keeps one command stream open, re-opening it with jittered
exponential back-off; every command it yields has passed the ``CommandGuard``.
Uploads retry until acknowledged (or their deadline passes); the server
deduplicates readings by batch id, so a retry after a lost ack is harmless.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

import grpc
from grpc import aio

from agent.channel.backoff import Backoff
from agent.channel.command_guard import CommandGuard, VerifiedCommand
from agent.channel.enroll import AGENT_VERSION, EnrolledIdentity, channel_options, make_csr
from agent.channel.signature_child import csr_in_child
from agent.errors import (
    COMMAND_FORGED,
    COMMAND_MALFORMED,
    BatchNotAccepted,
    CloudBusy,
    CommandRejected,
)
from agent.trust import TRUST_FILE, AgentTrust
from printgate.domain import Reading
from printgate.errors import AccessDenied, AgentUnavailable
from printgate.lifecycle import cancel_and_wait
from printgate.logs import get_logger
from printgate.wire import MAX_MESSAGE_BYTES, RETRY_AFTER_KEY, convert
from printgate.wire import agent_pb2 as pb
from printgate.wire import agent_pb2_grpc as pb_grpc

log = get_logger(__name__)

T = TypeVar("T")
REFUSED = (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED)
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
             grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
# readings: INTERNAL/UNKNOWN are the batch's (a poison reading, a cloud bug), not the network's:
# they go back to the queue, which retries a few times and then sets the batch aside
READINGS_RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)
REPORTED_REJECTIONS = frozenset({COMMAND_FORGED, COMMAND_MALFORMED})  # answered to the gateway (issue 18)
NOT_ACCEPTED = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.INVALID_ARGUMENT,
                grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.RESOURCE_EXHAUSTED)


class GrpcChannel:
    def __init__(self, target: str, identity: EnrolledIdentity, *, http_proxy: str | None = None,
                 guard: CommandGuard | None = None, backoff: Backoff | None = None,
                 rpc_timeout: float = 10.0, server_name: str | None = None) -> None:
        self.target = target
        self.identity = identity
        self._proxy = http_proxy
        self.guard = guard or CommandGuard(
            identity.agent_id, identity.command_verify_key, state_path=identity.data_dir / "seen-commands.json",
            trust=AgentTrust(identity.command_verify_key, identity.relay_host_key_fingerprint,
                             path=identity.data_dir / TRUST_FILE))
        self._backoff = backoff or Backoff()
        self._rpc_timeout = rpc_timeout
        self._server_name = server_name
        self._channel: aio.Channel | None = None
        self._stub: pb_grpc.AgentChannelStub | None = None
        self._stream_task: asyncio.Task[None] | None = None
        self._commands: asyncio.Queue[VerifiedCommand] = asyncio.Queue()
        self._connected = asyncio.Event()
        self._closed = False
        self.state = "idle"
        self.last_error: str | None = None
        self.rejections: list[CommandRejected] = []
        self._reports: set[asyncio.Task[None]] = set()  # refusals being reported back to the gateway
        self.reconnects = 0

    # ---- lifecycle ----------------------------------------------------------
    def _open_channel(self) -> None:
        creds = grpc.ssl_channel_credentials(
            root_certificates=self.identity.ca_pem(), private_key=self.identity.key_pem(),
            certificate_chain=self.identity.cert_pem())
        options = channel_options(self._proxy)
        if self._server_name:
            options.append(("grpc.ssl_target_name_override", self._server_name))
        self._channel = aio.secure_channel(self.target, creds, options=options)
        self._stub = pb_grpc.AgentChannelStub(self._channel)

    async def connect(self) -> None:
        """Open the channel and start the command stream (re-opened until ``aclose``)."""
        if self._channel is None:
            self._open_channel()
        if self._stream_task is None:
            self._stream_task = asyncio.create_task(self._stream_loop(), name="grpc-command-stream")

    async def wait_connected(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError as exc:
            raise AgentUnavailable(f"no command stream to {self.target} within {timeout:.0f}s "
                                   f"(last error: {self.last_error})") from exc

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def aclose(self) -> None:
        self._closed = True
        for task in list(self._reports):
            task.cancel()
        await cancel_and_wait(self._stream_task)
        self._stream_task = None
        if self._channel is not None:
            await self._channel.close(grace=None)
            self._channel = None
        self._connected.clear()
        self.state = "closed"

    async def __aenter__(self) -> GrpcChannel:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ---- command stream -----------------------------------------------------
    async def _stream_loop(self) -> None:
        while not self._closed:
            assert self._stub is not None
            self.state = "connecting"
            call = self._stub.CommandStream(pb.CommandStreamRequest(agent_version=AGENT_VERSION),
                                            wait_for_ready=True)
            try:
                await call.initial_metadata()
                self.state = "connected"
                self._connected.set()
                self._backoff.reset()
                log.info("agent.channel.connected", target=self.target, channel="grpc")
                async for envelope in call:
                    await self._accept(envelope, "grpc")
                code = grpc.StatusCode.UNAVAILABLE
                self.last_error = "stream ended by the gateway"
            except aio.AioRpcError as exc:
                code = exc.code()
                self.last_error = f"{code.name}: {exc.details()}"
            finally:
                call.cancel()
            self._connected.clear()
            self.reconnects += 1
            if code in REFUSED:
                self.state = "refused"
                log.error("agent.channel.refused", target=self.target, error=self.last_error)
            else:
                self.state = "reconnecting"
                log.warning("agent.channel.lost", target=self.target, error=self.last_error)
            delay = self._backoff.maximum if code in REFUSED else self._backoff.next_delay()
            await asyncio.sleep(delay)

    async def _accept(self, envelope: pb.SignedCommand, channel: str) -> None:
        try:
            verified = await self.guard.admit(envelope, channel=channel)
        except CommandRejected as exc:
            self.rejections.append(exc)
            log.warning("agent.command.rejected", reason=exc.code, channel=channel)
            self._report_rejection(envelope, exc)
            return
        if verified.kind != "trust_set":  # applied by the guard (agent/trust.py); nothing for the runtime
            self._commands.put_nowait(verified)

    def _report_rejection(self, envelope: pb.SignedCommand, exc: CommandRejected) -> None:
        """A command refused as forged or malformed (a gateway node with other keys, issue 18) is
        answered as failed, so the gateway that sent it learns why at once instead of waiting for its
        timeout. Replays and expired commands are not answered: the same command arrives over both
        channels, and the first delivery answers it."""
        if exc.code not in REPORTED_REJECTIONS:
            return
        try:
            command_id = pb.Command.FromString(envelope.command).id[:64]
        except Exception:  # unparseable: nothing to answer
            return
        if not command_id:
            return
        message = f"the agent refused the command ({exc.code}): {exc.message}"[:1000]

        async def report() -> None:
            try:
                await self.report_result(command_id, ok=False, error_code=exc.code, message=message)
            except Exception as err:  # the gateway's own timeout still ends its wait
                log.warning("agent.command.rejection_not_reported", command=command_id, error=str(err))

        task = asyncio.get_running_loop().create_task(report(), name=f"report-rejection-{command_id}")
        self._reports.add(task)
        task.add_done_callback(self._reports.discard)

    async def commands(self) -> AsyncIterator[VerifiedCommand]:
        """Verified commands as they arrive (forever, until the caller stops)."""
        while True:
            yield await self._commands.get()

    # ---- unary calls --------------------------------------------------------
    async def _call(self, what: str, rpc: Callable[[], Awaitable[T]], *, deadline_s: float | None,
                    retryable: tuple[grpc.StatusCode, ...] = RETRYABLE) -> T:
        """Run ``rpc`` until it succeeds; back off on transient failures."""
        backoff = Backoff(initial=self._backoff.initial, maximum=min(self._backoff.maximum, 5.0))
        give_up = None if deadline_s is None else time.monotonic() + deadline_s
        while True:
            if self._closed:
                raise AgentUnavailable(f"{what}: channel closed")
            try:
                return await rpc()
            except aio.AioRpcError as exc:
                if exc.code() in REFUSED:
                    raise AccessDenied(f"gateway refused {what}: {exc.details()}") from exc
                if exc.code() not in retryable:
                    raise AgentUnavailable(f"{what} failed: {exc.code().name} {exc.details()}") from exc
                self.last_error = f"{exc.code().name}: {exc.details()}"
            delay = backoff.next_delay()
            if give_up is not None and time.monotonic() + delay > give_up:
                raise AgentUnavailable(f"{what} not acknowledged before its deadline "
                                       f"(last error: {self.last_error})")
            await asyncio.sleep(delay)

    def _stub_or_fail(self) -> pb_grpc.AgentChannelStub:
        if self._stub is None:
            raise AgentUnavailable("gRPC channel not connected: call connect() first")
        return self._stub

    async def upload_readings(self, batch_id: str, readings: Sequence[Reading] | bytes, *,
                              deadline_s: float | None = None) -> pb.Ack:
        """Upload one batch (typed readings: version 2; bytes: a version 1 JSON payload); returns
        the gateway's acknowledgement (readings it refused one by one are named in it). Raises
        ``CloudBusy`` when the cloud's ingest is behind (keep the batch, retry after its hint)."""
        stub = self._stub_or_fail()
        if isinstance(readings, bytes):
            request = pb.ReadingsBatch(site_id=self.identity.site_id, batch_id=batch_id, payload_json=readings)
        else:
            request = convert.readings_batch(self.identity.site_id, batch_id, readings)
        if request.ByteSize() > MAX_MESSAGE_BYTES:  # the channel would refuse it whatever the retries
            raise BatchNotAccepted(f"readings batch {batch_id} is {request.ByteSize()} bytes, over the channel's "
                                   f"message limit of {MAX_MESSAGE_BYTES}: it must be split", permanent=True)
        try:
            return await self._call(f"readings batch {batch_id}", lambda: stub.UploadReadings(
                request, timeout=self._rpc_timeout, wait_for_ready=True), deadline_s=deadline_s,
                retryable=READINGS_RETRYABLE)
        except AgentUnavailable as exc:
            cause = exc.__cause__
            if not isinstance(cause, aio.AioRpcError) or cause.code() not in NOT_ACCEPTED:
                raise
            code, details = cause.code(), cause.details() or ""
            hinted = any(k == RETRY_AFTER_KEY for k, _ in cause.trailing_metadata() or ())
            if code == grpc.StatusCode.RESOURCE_EXHAUSTED and hinted:  # ingest behind: keep it, slow down
                raise CloudBusy(f"readings batch {batch_id} deferred: {details}",
                                retry_after_s=_retry_after(cause)) from cause
            permanent = code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED)
            raise BatchNotAccepted(f"readings batch {batch_id} not accepted: {code.name} {details}"
                                   + (" (larger than the channel's message limit: it must be split)"
                                      if code == grpc.StatusCode.RESOURCE_EXHAUSTED else ""),
                                   permanent=permanent) from cause

    async def upload_inventory(self, devices: Sequence[pb.DiscoveredDevice], *,
                               deadline_s: float | None = None) -> None:
        stub = self._stub_or_fail()
        request = pb.Inventory(site_id=self.identity.site_id, devices=list(devices),
                               scanned_at_ms=int(time.time() * 1000))
        await self._call("inventory", lambda: stub.UploadInventory(
            request, timeout=self._rpc_timeout, wait_for_ready=True), deadline_s=deadline_s)

    async def heartbeat(self, *, queue_length: int = 0, printers: int = 0,
                        relay_refusals: Sequence[pb.RelayRefusal] = (),
                        health: pb.HeartbeatRequest | None = None) -> int:
        """One heartbeat (with the relay refusals to report and the agent's ``health``: tasks,
        drops, oldest queued reading, degradation); the gateway's clock (ms)."""
        stub = self._stub_or_fail()
        request = pb.HeartbeatRequest(agent_version=AGENT_VERSION, queue_length=queue_length,
                                      printers=printers, sent_at_ms=int(time.time() * 1000),
                                      relay_refusals=relay_refusals)
        if health is not None:
            request.MergeFrom(health)
        resp = await self._call("heartbeat", lambda: stub.Heartbeat(request, timeout=self._rpc_timeout),
                                deadline_s=self._rpc_timeout)
        return int(resp.server_time_ms)

    async def report_result(self, command_id: str, *, ok: bool, error_code: str = "",
                            message: str = "") -> None:
        stub = self._stub_or_fail()
        request = pb.CommandResult(command_id=command_id, ok=ok, error_code=error_code, message=message)
        await self._call("command result", lambda: stub.ReportCommandResult(
            request, timeout=self._rpc_timeout), deadline_s=self._rpc_timeout * 3)

    async def renew_certificate(self) -> EnrolledIdentity:
        """Get a fresh certificate for the same key and re-open the channel with it. The CSR is made
        in a child process (``agent.channel.signature_child``): no cryptography in the agent for it."""
        stub = self._stub_or_fail()
        csr = await csr_in_child(self.identity.key_pem(), self.identity.agent_id)
        if csr is None:  # the child gave none (logged): made here
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import ec

            key = serialization.load_pem_private_key(self.identity.key_pem(), None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            csr = make_csr(key, self.identity.agent_id)
        request = pb.RenewRequest(csr_pem=csr)
        resp = await self._call("certificate renewal", lambda: stub.RenewCertificate(
            request, timeout=self._rpc_timeout), deadline_s=self._rpc_timeout * 3)
        self.identity = self.identity.with_certificate(resp.client_cert_pem, resp.cert_not_after_ms)
        old = self._channel
        self._open_channel()
        if self._stream_task is not None:
            await cancel_and_wait(self._stream_task)
            self._stream_task = asyncio.create_task(self._stream_loop(), name="grpc-command-stream")
        if old is not None:
            await old.close(grace=1.0)
        return self.identity

    def renewal_due(self, *, now: float | None = None, lifetime_fraction: float = 1 / 3) -> bool:
        """True when less than ``lifetime_fraction`` of a day-scale lifetime remains."""
        remaining_ms = self.identity.cert_not_after_ms - (now or time.time()) * 1000
        return remaining_ms < 24 * 3600 * 1000 * lifetime_fraction


def _retry_after(exc: aio.AioRpcError, default: float = 5.0) -> float:
    """The gateway's retry hint (trailing metadata ``printgate-retry-after-s``), bounded to 1..300 s."""
    for key, value in exc.trailing_metadata() or ():
        if key == RETRY_AFTER_KEY:
            try:
                return min(max(float(value), 1.0), 300.0)
            except (TypeError, ValueError):
                break
    return default
