"""Start-up reconciliation: firewall exceptions of sessions that are gone are removed."""

from __future__ import annotations

from collections.abc import Iterable

from gateway.firewall.base import Firewall
from printgate.logs import get_logger

log = get_logger("gateway.firewall.reconcile")

RULE_SUFFIXES = ("-tech", "-agent")


def rule_ids_for(session_id: str) -> list[str]:
    """The rule ids the broker uses for one session (technician and agent exceptions)."""
    return [f"{session_id}{suffix}" for suffix in RULE_SUFFIXES]


async def reconcile_with_sessions(firewall: Firewall, live_session_ids: Iterable[str]) -> list[str]:
    """Keep only the exceptions of live sessions; return the removed rule ids."""
    live = [rid for sid in live_session_ids for rid in rule_ids_for(sid)]
    removed = await firewall.reconcile(live)
    if removed:
        log.info("firewall.reconciled", removed=len(removed))
    return removed
