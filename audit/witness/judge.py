"""What a witness accepts (pure): a validly signed checkpoint that extends the
last one it cosigned. Anything else is a ``WitnessRefused`` naming why."""

from __future__ import annotations

from collections.abc import Sequence

from audit.checkpoint import Checkpoint, CheckpointVerifier
from audit.cosignature import Cosignature
from audit.errors import LOG_FORGED, LOG_FORKED, LOG_TRUNCATED, WitnessRefused
from audit.merkle import verify_consistency


def check_signed(new: Checkpoint, gateway: CheckpointVerifier) -> None:
    if not gateway.is_valid(new):
        raise WitnessRefused(
            f"checkpoint {new.tree_size} is not signed by the gateway key {gateway.key_id} this witness "
            f"trusts (it names key {new.key_id}): refusing to cosign", code=LOG_FORGED)


def check_extends(last: Cosignature, new: Checkpoint, proof: Sequence[bytes]) -> None:
    """``new`` must extend ``last.checkpoint`` (``proof``: RFC 6962 consistency proof between them)."""
    old = last.checkpoint
    seen = f"checkpoint {old.tree_size} (root {old.root[:16]}…) this witness cosigned at {last.cosigned_at}"
    if new.tree_size < old.tree_size:
        raise WitnessRefused(
            f"the gateway's newest checkpoint covers {new.tree_size} records, but {seen} covers "
            f"{old.tree_size}: the tail of the log was cut. Refusing to cosign", code=LOG_TRUNCATED)
    if new.tree_size == old.tree_size:
        if (new.root, new.head) != (old.root, old.head):
            raise WitnessRefused(
                f"the gateway now signs another checkpoint {new.tree_size} (root {new.root[:16]}…) than {seen}: "
                "the log was rewritten (forked). Refusing to cosign", code=LOG_FORKED)
        return
    if not verify_consistency(old.tree_size, new.tree_size, bytes.fromhex(old.root), bytes.fromhex(new.root),
                              proof):
        raise WitnessRefused(
            f"checkpoint {new.tree_size} (root {new.root[:16]}…) does not extend {seen}: the consistency proof "
            "fails, so records the witness saw were changed or removed (forked log). Refusing to cosign",
            code=LOG_FORKED)
