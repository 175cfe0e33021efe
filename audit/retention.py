"""Retention per tenant that keeps the log verifiable.

Pruning removes the *content* of a tenant's records older than a cut-off but
keeps each record's hash and prev link (a tombstone), so the chain and every
Merkle proof still verify. Only records already covered by a signed
checkpoint are pruned, and the prune itself is appended, in the same
transaction, as an ``audit.retention.pruned`` record whose ``seq_ranges``
name every pruned record: a verifier accepts a tombstone only if such a
record covers it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from audit.chain import RETENTION_EVENT
from audit.log import AuditLog
from printgate.domain import AuditEventIn
from printgate.errors import ConfigError
from printgate.logs import get_logger
from printgate.store import audit as store

log = get_logger("audit.retention")


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Keep a tenant's events ``keep_days`` days (customer wins over dealer)."""

    keep_days: int
    dealer_id: str | None = None
    customer_id: str | None = None

    def cutoff(self, now: datetime) -> datetime:
        return now - timedelta(days=self.keep_days)


@dataclass(frozen=True, slots=True)
class PruneResult:
    pruned: int
    ranges: list[tuple[int, int]]
    record_seq: int | None  # the audit.retention.pruned record


def to_ranges(seqs: Sequence[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s in seqs:
        if out and out[-1][1] == s - 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


async def prune(audit_log: AuditLog, policy: RetentionPolicy, *, now: datetime, actor: str = "system") -> PruneResult:
    """Apply ``policy``: tombstone the tenant's records older than its cut-off."""
    if policy.dealer_id is None and policy.customer_id is None:
        raise ConfigError("a retention policy needs a dealer_id or a customer_id")
    if policy.keep_days < 0:
        raise ConfigError("keep_days must be >= 0")
    before = policy.cutoff(now)
    async with audit_log.db.transaction() as s:
        await store.lock_head(s)
        cp = await store.latest_checkpoint(s)
        if cp is None:
            return PruneResult(0, [], None)
        seqs = await store.prunable(s, before=before, up_to_seq=int(cp.tree_size),
                                    dealer_id=policy.dealer_id, customer_id=policy.customer_id)
        if not seqs:
            return PruneResult(0, [], None)
        ranges = to_ranges(seqs)
        (rec,) = await audit_log.append_in(s, [AuditEventIn(
            type=RETENTION_EVENT, actor=actor, dealer_id=policy.dealer_id, customer_id=policy.customer_id,
            details={"before": before.isoformat(), "count": len(seqs), "keep_days": policy.keep_days,
                     "seq_ranges": [list(r) for r in ranges]},
        )])
        await store.tombstone(s, seqs, pruned_by=rec.seq)
    log.info("audit.pruned", count=len(seqs), dealer=policy.dealer_id, customer=policy.customer_id)
    return PruneResult(len(seqs), ranges, rec.seq)
