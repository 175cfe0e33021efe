"""Keep a session's tunnel up: reconnect after a lost connection until the session ends.

A Wi-Fi drop or a NAT timeout must not end the technician's session. When the
SSH connection of an open tunnel is lost (not ended by an SSH disconnect: that
is the relay ending the session), the agent connects again with the same
session credential (jittered back-off from ``FIRST_DELAY_S`` up to
``MAX_DELAY_S``) until it succeeds, the credential expires, the relay refuses
the credential (revoked: the session ended meanwhile), the device fails its
identity check, or the cloud closes the session. The relay binds the session's
loopback port again, so the proxy's route stays valid.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from agent.channel.backoff import Backoff
from printgate.errors import PrintgateError
from printgate.logs import get_logger

log = get_logger(__name__)

FIRST_DELAY_S = 0.2
MAX_DELAY_S = 10.0
# refusals that another attempt cannot change
PERMANENT_CODES = frozenset({"relay_auth_refused", "relay_host_key_mismatch", "identity_mismatch"})


class Reconnectable(Protocol):
    async def wait_closed(self) -> None: ...
    async def aclose(self) -> None: ...
    @property
    def closed_cleanly(self) -> bool: ...


async def keep_open[T: Reconnectable](
    session_id: str,
    tunnel: T,
    *,
    reopen: Callable[[], Awaitable[T]],
    is_current: Callable[[T], bool],
    replace: Callable[[T], None],
    expires_at: float,
    clock: Callable[[], float] = time.time,
) -> None:
    """Run for the life of the session; returns when the tunnel is closed for good.

    ``is_current(t)``: the session still wants ``t`` (False once it was closed on
    command); ``replace(new)``: make ``new`` the session's tunnel; ``expires_at``:
    wall-clock end of the session's credential.
    """
    while True:
        await tunnel.wait_closed()
        if not is_current(tunnel):
            return
        if tunnel.closed_cleanly:  # the relay said goodbye: it ended the session
            log.info("agent.tunnel_ended_by_relay", session=session_id)
            return
        log.warning("agent.tunnel_lost", session=session_id)
        reopened = await _reconnect(session_id, tunnel, reopen, is_current, expires_at, clock)
        if reopened is None:
            return
        replace(reopened)
        tunnel = reopened
        log.info("agent.tunnel_reopened", session=session_id)


async def _reconnect[T: Reconnectable](
    session_id: str,
    lost: T,
    reopen: Callable[[], Awaitable[T]],
    is_current: Callable[[T], bool],
    expires_at: float,
    clock: Callable[[], float],
) -> T | None:
    backoff = Backoff(initial=FIRST_DELAY_S, maximum=MAX_DELAY_S)
    while True:
        delay = backoff.next_delay()
        attempt = backoff.attempts
        if clock() + delay >= expires_at:
            log.warning("agent.tunnel_gone", session=session_id, reason="the session credential expired")
            return None
        await asyncio.sleep(delay)
        if not is_current(lost):
            return None  # closed on command while we waited
        try:
            new = await reopen()
        except PrintgateError as exc:
            if exc.code in PERMANENT_CODES:
                log.warning("agent.tunnel_gone", session=session_id, reason=exc.message, code=exc.code)
                return None
            log.info("agent.tunnel_retry", session=session_id, attempt=attempt, error=exc.message)
            continue
        except OSError as exc:
            log.info("agent.tunnel_retry", session=session_id, attempt=attempt, error=str(exc))
            continue
        if not is_current(lost):  # closed on command while connecting
            await new.aclose()
            return None
        return new
