"""In-process firewall: the relay and proxy accept paths ask ``is_allowed`` (embedded default)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from gateway.firewall.base import FirewallRule, validate_rule
from printgate.logs import get_logger

log = get_logger("gateway.firewall.inprocess")


class InProcessFirewall:
    """Allow-list kept in memory; rules expire by themselves like nftables elements."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._rules: dict[str, FirewallRule] = {}

    async def allow(self, rule_id: str, src: str, dport: int, timeout_s: int) -> None:
        src = validate_rule(rule_id, src, dport, timeout_s)
        self._rules[rule_id] = FirewallRule(rule_id, src, dport, self._clock() + timeout_s)
        log.info("firewall.allow", rule=rule_id, src=src, dport=dport, timeout_s=timeout_s)

    async def revoke(self, rule_id: str) -> None:
        if self._rules.pop(rule_id, None) is not None:
            log.info("firewall.revoke", rule=rule_id)

    async def reconcile(self, live_rule_ids: Iterable[str]) -> list[str]:
        live = set(live_rule_ids)
        stale = [rid for rid in self._rules if rid not in live]
        for rid in stale:
            await self.revoke(rid)
        return stale

    def is_allowed(self, src: str, dport: int) -> bool:
        now = self._clock()
        for rule in list(self._rules.values()):
            if rule.expires_at <= now:
                self._rules.pop(rule.rule_id, None)
                continue
            if rule.src == src and rule.dport == dport:
                return True
        return False

    def rules(self) -> list[FirewallRule]:
        now = self._clock()
        return [r for r in self._rules.values() if r.expires_at > now]

    async def aclose(self) -> None:
        self._rules.clear()
