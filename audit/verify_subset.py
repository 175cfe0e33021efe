"""Verification of subset (one tenant's) exports: inclusion proofs per record.

Checkpoints kept elsewhere (``anchors``, a witness's state file) and the
cosignatures of named witnesses in the export must agree with the export's
newest checkpoint: equal at the same size, or proven a prefix of it by a
``@consistency`` proof in the export.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from audit.chain import entry_hash, link_of
from audit.checkpoint import Checkpoint
from audit.damage import Damage
from audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from audit.stream import (
    CheckpointItem,
    ConsistencyItem,
    CosignatureItem,
    Item,
    MalformedItem,
    PersonalItem,
    ProofItem,
    RecordItem,
)

if TYPE_CHECKING:
    from audit.verify import _State


def verify_subset(state: _State, peek: Iterator[Item]) -> None:
    """Check each record of a subset export against a signed checkpoint by its proof."""
    cps: dict[int, Checkpoint] = {}
    kept = {size: it.checkpoint for size, it in state.pending.items()}  # anchors given to the verifier
    proofs: dict[tuple[int, int], list[str]] = {}
    last_seq = 0
    pending: RecordItem | None = None
    for item in peek:
        if isinstance(item, CosignatureItem):
            if state.accept_cosignature(item):
                cp = item.cosignature.checkpoint
                kept.setdefault(cp.tree_size, cp)
        elif isinstance(item, ConsistencyItem):
            proofs[(item.first, item.second)] = item.path
        elif isinstance(item, CheckpointItem):
            cp = item.checkpoint
            why = state.verifier.refusal(cp) if state.verifier is not None else None
            if why is not None:
                raise state.fail(Damage.FORGED_CHECKPOINT, cp.tree_size, item.line,
                                 f"checkpoint for tree size {cp.tree_size} has no valid signature: {why}")
            cps[cp.tree_size] = cp
            state.checkpoints += 1
        elif isinstance(item, RecordItem):
            if pending is not None:
                raise state.fail(Damage.MALFORMED, None, pending.line, "record without inclusion proof")
            link = link_of(item.data)
            if link is None:
                raise state.fail(Damage.MALFORMED, None, item.line, "not a canonical audit entry")
            seq = link[1]
            if seq <= last_seq:
                kind = Damage.INSERTED if seq == last_seq else Damage.REORDERED
                raise state.fail(kind, seq, item.line, f"record {seq} follows record {last_seq}")
            last_seq, pending = seq, item
        elif isinstance(item, ProofItem):
            if pending is None:
                raise state.fail(Damage.MALFORMED, item.seq, item.line, "proof without record")
            signed = cps.get(item.tree_size)
            if signed is None:
                raise state.fail(Damage.MALFORMED, item.seq, item.line,
                                 f"no signed checkpoint of size {item.tree_size} in the export")
            leaf = leaf_hash(bytes.fromhex(entry_hash(pending.data)))
            try:
                path = [bytes.fromhex(p) for p in item.path]
            except ValueError:
                path = []
            if item.seq != last_seq or not verify_inclusion(
                leaf, last_seq - 1, signed.tree_size, path, bytes.fromhex(signed.root)
            ):
                raise state.fail(Damage.CHANGED, last_seq, pending.line,
                                 f"record {last_seq} is not in the tree signed by checkpoint {signed.tree_size}")
            state.records += 1
            state.anchored += 1
            state.last_record = pending
            pending = None
        elif isinstance(item, PersonalItem):
            state.personal(item)
        elif isinstance(item, MalformedItem):
            raise state.fail(Damage.MALFORMED, None, item.line, item.reason)
    if pending is not None:
        raise state.fail(Damage.MALFORMED, None, pending.line, "record without inclusion proof")
    _check_kept(state, cps, kept, proofs)
    state.require_witnesses()


def _check_kept(state: _State, cps: dict[int, Checkpoint], kept: dict[int, Checkpoint],
                proofs: dict[tuple[int, int], list[str]]) -> None:
    """Every kept or cosigned checkpoint must be the export's newest checkpoint or a proven prefix of it."""
    if not kept:
        return
    if not cps:
        raise state.fail(Damage.MALFORMED, None, None, "the export holds no signed checkpoint")
    top = cps[max(cps)]
    for size, cp in sorted(kept.items()):
        who = state.labels.get(size, "a checkpoint kept elsewhere")
        if size > top.tree_size:
            raise state.fail(Damage.DELETED, top.tree_size + 1, None,
                             f"{who} signed checkpoint {size} over {size} records, but this export's newest "
                             f"checkpoint covers only {top.tree_size}: the tail of the log was cut after it was seen")
        if size == top.tree_size:
            ok = (cp.root, cp.head) == (top.root, top.head)
        else:
            path = proofs.get((size, top.tree_size))
            if path is None:
                raise state.fail(Damage.MALFORMED, size, None,
                                 f"the export holds no consistency proof from checkpoint {size} ({who}) to "
                                 f"checkpoint {top.tree_size}: verify the full log instead")
            try:
                ok = verify_consistency(size, top.tree_size, bytes.fromhex(cp.root), bytes.fromhex(top.root),
                                        [bytes.fromhex(p) for p in path])
            except ValueError:
                ok = False
        if not ok:
            raise state.fail(Damage.REWRITTEN, size, None,
                             f"{who}: checkpoint {size} is not a prefix of this export's checkpoint "
                             f"{top.tree_size}: the log was rewritten after it was seen")
