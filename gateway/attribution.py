"""Who a DWA session belongs to, stamped on every audit record of that session.

Tenant auditors find records by dealer and customer (``audit.query.scope_for``);
a record of a session that lacks them is invisible to them. ``Attribution``
holds a session's dealer, customer, site, device and user; ``AttributedAudit``
is an audit sink that fills them into every event naming a session it knows
(broker steps, proxy requests, blocked transfers), whoever wrote the event.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from printgate.domain import AuditEventIn
from printgate.interfaces import AuditSink

# sessions remembered after they ended (late events: the "session ended" page, a closing tunnel)
MAX_REMEMBERED = 50_000


@dataclass(frozen=True, slots=True)
class Attribution:
    dealer_id: str | None = None
    customer_id: str | None = None
    site_id: str | None = None
    device_id: str | None = None
    user_id: str | None = None

    def stamp(self, event: AuditEventIn) -> AuditEventIn:
        """``event`` with the ids it lacks filled in (ids the writer set are kept)."""
        extra = {k: v for k, v in (("site_id", self.site_id), ("user_id", self.user_id)) if v is not None}
        return replace(
            event,
            dealer_id=event.dealer_id or self.dealer_id,
            customer_id=event.customer_id or self.customer_id,
            device_id=event.device_id or self.device_id,
            details={**extra, **event.details},
        )


class AttributedAudit:
    """An ``AuditSink`` that stamps each event of a registered session with its ``Attribution``."""

    def __init__(self, inner: AuditSink) -> None:
        self._inner = inner
        self._sessions: OrderedDict[str, Attribution] = OrderedDict()

    def register(self, session_id: str, attribution: Attribution) -> None:
        self._sessions[session_id] = attribution
        self._sessions.move_to_end(session_id)
        while len(self._sessions) > MAX_REMEMBERED:
            self._sessions.popitem(last=False)

    def of(self, session_id: str | None) -> Attribution | None:
        return self._sessions.get(session_id) if session_id else None

    def stamp(self, event: AuditEventIn) -> AuditEventIn:
        attribution = self.of(event.session_id)
        return attribution.stamp(event) if attribution is not None else event

    async def append(self, event: AuditEventIn) -> Any:
        return await self._inner.append(self.stamp(event))

    async def append_many(self, events: Sequence[AuditEventIn]) -> Any:
        stamped = [self.stamp(e) for e in events]
        many = getattr(self._inner, "append_many", None)
        if many is not None:
            return await many(stamped)
        return [await self._inner.append(e) for e in stamped]
