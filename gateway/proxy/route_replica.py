"""A worker process's copy of the pool's authoritative ``RouteTable``.

Routes, extensions, removals and issued cookies arrive over the control
channel. Launch tokens never reach a worker: redemption is asked of the
authoritative table so a token stays one-time across workers. Idle time is
decided by the pool (activity from every worker), so ``last_activity`` here is
unknown; ``touch`` collects the sessions seen and ``take_activity`` hands them
to the batch report.
"""

from __future__ import annotations

from datetime import datetime

from gateway.proxy.control_channel import (
    ControlChannelError,
    ControlPeer,
    route_from_json,
    tombstone_from_json,
)
from gateway.proxy.routes import RouteTable, SessionRoute, Tombstone
from printgate.errors import TokenInvalid


class ReplicaRouteTable(RouteTable):
    def __init__(self, peer: ControlPeer, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self._peer = peer
        self._seen: set[str] = set()

    # --- activity: reported to the pool in batches ------------------------
    def touch(self, session_id: str) -> None:
        super().touch(session_id)
        self._seen.add(session_id)

    def take_activity(self) -> list[str]:
        seen, self._seen = self._seen, set()
        return sorted(seen)

    def mark_credential_typed(self, session_id: str) -> None:
        """Here at once, and through the pool to every other worker."""
        super().mark_credential_typed(session_id)
        self._peer.send({"op": "typed", "session_id": session_id})

    def last_activity(self, session_id: str) -> datetime | None:
        return None  # the pool judges idleness with the activity of every worker

    # --- request path: ask the authoritative table -----------------------
    async def resolve(self, host: str) -> SessionRoute | Tombstone | None:
        found = self.by_host(host)
        if found is not None:
            return found
        # a route added a moment ago may not have arrived yet: ask (only on a miss)
        try:
            answer = await self._peer.ask("lookup", host=host.lower(), timeout_s=5.0)
        except (ControlChannelError, TimeoutError):
            return None
        if not answer:
            return None
        if answer["kind"] == "route":
            route = route_from_json(answer["route"])
            if self.get(route.session_id) is None:
                self.add(route)
                for digest in answer.get("cookies", []):
                    self.add_cookie_digest(route.session_id, digest)
            return self.by_host(host)
        tomb = tombstone_from_json(answer["tombstone"])
        self.add_tombstone(tomb)
        return tomb

    async def redeem(self, host: str, token: str) -> str:
        try:
            answer = await self._peer.ask("redeem", host=host.lower(), token=token, timeout_s=10.0)
        except (ControlChannelError, TimeoutError) as exc:
            raise TokenInvalid(
                f"launch link could not be checked ({exc}); open the device again from the portal"
            ) from exc
        cookie = str(answer["cookie"])
        self.add_cookie_digest(str(answer["session_id"]), str(answer["digest"]))
        return cookie
