"""The control channel between the worker pool and one worker process.

A Unix stream socket (one ``socketpair`` per worker) carrying length-prefixed
JSON objects: ``{"id": n, "op": ..., ...}`` asks, ``{"reply_to": n, "ok": ...}``
answers. Both sides can ask; each asked op runs in its own task (tasks start in
arrival order, so handlers without an ``await`` apply messages in order).
Routes travel as plain JSON (``route_to_json``/``route_from_json``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import datetime
from typing import Any

from gateway.errors import ControlChannelError
from gateway.proxy.routes import SessionRoute, Tombstone
from printgate.domain.credentials import CredentialScope, DeviceLogin, LoginKind
from printgate.errors import PrintgateError
from printgate.logs import get_logger

log = get_logger(__name__)

Message = dict[str, Any]
Handler = Callable[[Message], Awaitable[Any]]
_LEN = struct.Struct("!I")
MAX_MESSAGE = 16 * 1024 * 1024


def route_to_json(route: SessionRoute) -> Message:
    data = asdict(route)
    data["expires_at"] = route.expires_at.isoformat()
    return data


def route_from_json(data: Message) -> SessionRoute:
    login = data.get("login")
    return SessionRoute(**{**data, "expires_at": datetime.fromisoformat(data["expires_at"]),
                           "login": login_from_json(login) if login else None})


def login_from_json(data: Message) -> DeviceLogin:
    return DeviceLogin(LoginKind(data["kind"]), data["account"], data["password"], data.get("profile", ""),
                       int(data.get("version", 0)), CredentialScope(data.get("scope", "device")))


def tombstone_to_json(tomb: Tombstone) -> Message:
    return {"session_id": tomb.session_id, "host": tomb.host, "reason": tomb.reason,
            "ended_at": tomb.ended_at.isoformat()}


def tombstone_from_json(data: Message) -> Tombstone:
    return Tombstone(data["session_id"], data["host"], data["reason"], datetime.fromisoformat(data["ended_at"]))


async def read_message(reader: asyncio.StreamReader) -> Message | None:
    """One framed message, or None at the end of the stream."""
    try:
        (size,) = _LEN.unpack(await reader.readexactly(_LEN.size))
        if size > MAX_MESSAGE:
            raise ControlChannelError(f"control message of {size} bytes is too large")
        message = json.loads(await reader.readexactly(size))
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    if not isinstance(message, dict):
        raise ControlChannelError("control message is not a JSON object")
    return message


def frame(message: Message) -> bytes:
    data = json.dumps(message, separators=(",", ":")).encode()
    return _LEN.pack(len(data)) + data


class ControlPeer:
    """One end of the channel: ``send`` (no answer), ``ask`` (awaits the answer), ``serve`` (read loop)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str) -> None:
        self._reader = reader
        self._writer = writer
        self._name = name
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    def send(self, message: Message) -> None:
        if self.closed:
            return
        self._writer.write(frame(message))

    async def ask(self, op: str, timeout_s: float = 30.0, **fields: Any) -> Any:
        if self.closed:
            raise ControlChannelError(f"control channel to {self._name} is closed; the proxy worker is gone")
        self._next_id += 1
        msg_id = self._next_id
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = fut
        try:
            self.send({"id": msg_id, "op": op, **fields})
            async with asyncio.timeout(timeout_s):
                return await fut
        finally:
            self._pending.pop(msg_id, None)

    async def serve(self, handler: Handler) -> None:
        """Read until the other end closes; then every pending ``ask`` fails."""
        try:
            while True:
                message = await read_message(self._reader)
                if message is None:
                    return
                if "reply_to" in message:
                    fut = self._pending.get(int(message["reply_to"]))
                    if fut is not None and not fut.done():
                        if message.get("ok"):
                            fut.set_result(message.get("result"))
                        else:
                            fut.set_exception(ControlChannelError(str(message.get("error", "failed"))))
                    continue
                task = asyncio.create_task(self._answer(handler, message))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        finally:
            self.closed = True
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ControlChannelError(f"control channel to {self._name} closed"))

    async def _answer(self, handler: Handler, message: Message) -> None:
        msg_id = message.get("id")
        try:
            result = await handler(message)
        except Exception as exc:  # the asker gets the error; this side keeps serving
            if not isinstance(exc, PrintgateError):
                log.error("dwa.control_handler_failed", peer=self._name, op=message.get("op"), error=repr(exc))
            if msg_id is not None:
                self.send({"reply_to": msg_id, "ok": False, "code": getattr(exc, "code", "error"),
                           "error": exc.message if isinstance(exc, PrintgateError) else "internal error"})
            return
        if msg_id is not None:
            self.send({"reply_to": msg_id, "ok": True, "result": result})

    async def aclose(self) -> None:
        self.closed = True
        for task in list(self._tasks):
            task.cancel()
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()
