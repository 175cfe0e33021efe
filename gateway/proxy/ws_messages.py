"""A live WebSocket keeps no history of its messages.

mitmproxy appends every message of a WebSocket to ``flow.websocket.messages`` and keeps it
there until the flow is gone: a device pushing 64 KiB status texts that pass every check,
or a page sending empty text frames (about 250 bytes of objects each), grew the proxy by
hundreds of MB on one open WebSocket (tester wsx F1). ``TrimmedMessages`` replaces that list
(``keep_no_history``, at ``websocket_start``): appending a message forgets every earlier one,
whose hooks have all run and which was relayed or dropped already (mitmproxy appends the
next message only then), keeping only how many there were and their bytes. The latest
message stays, so ``messages[-1]`` is what every ``websocket_message`` hook reads.

``totals`` gives the counts the ``dwa.websocket`` record holds: every message and its bytes
(after the hooks: what was passed on, or dropped), forgotten or not.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import SupportsIndex

from mitmproxy import websocket


class TrimmedMessages(list[websocket.WebSocketMessage]):
    """``flow.websocket.messages`` holding only the latest message; ``forgotten`` and
    ``forgotten_bytes`` count the earlier ones."""

    def __init__(self, messages: Iterable[websocket.WebSocketMessage] = ()) -> None:
        super().__init__(messages)
        self.forgotten = 0
        self.forgotten_bytes = 0

    def append(self, message: websocket.WebSocketMessage, /) -> None:
        self._forget_all()
        super().append(message)

    def insert(self, index: SupportsIndex, message: websocket.WebSocketMessage, /) -> None:
        self._forget_all()  # nothing but the layer adds messages: whatever it inserts is the latest
        super().append(message)

    def _forget_all(self) -> None:
        for done in self:
            self.forgotten += 1
            self.forgotten_bytes += len(done.content)
        self.clear()


def keep_no_history(data: websocket.WebSocketData) -> None:
    """From now on ``data.messages`` keeps only its latest message (what it holds is kept)."""
    if not isinstance(data.messages, TrimmedMessages):
        data.messages = TrimmedMessages(data.messages)


def totals(data: websocket.WebSocketData | None) -> tuple[int, int]:
    """How many messages the WebSocket carried and their bytes, forgotten ones included."""
    if data is None:
        return 0, 0
    messages = data.messages
    count, size = len(messages), sum(len(m.content) for m in messages)
    if isinstance(messages, TrimmedMessages):
        count += messages.forgotten
        size += messages.forgotten_bytes
    return count, size
