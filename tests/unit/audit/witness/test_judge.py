"""What a witness accepts: a validly signed checkpoint extending the last one it cosigned."""

from __future__ import annotations

import pytest

from audit.checkpoint import Checkpoint, Signer
from audit.cosignature import Cosignature, Cosigner
from audit.merkle import MerkleTree, leaf_hash
from audit.witness.judge import WitnessRefused, check_extends, check_signed

AT = "2026-12-05T10:00:00.000000Z"
SIGNER = Signer.generate()
LEAVES = [leaf_hash(i.to_bytes(4, "big")) for i in range(40)]
TREE = MerkleTree(LEAVES)


def checkpoint(size: int, tree: MerkleTree = TREE) -> Checkpoint:
    return SIGNER.sign(tree_size=size, root=tree.root(size), head=f"{size:064x}", at=AT)


def seen(size: int) -> Cosignature:
    return Cosigner.generate().cosign(checkpoint(size), at=AT)


def test_a_grown_log_with_a_valid_consistency_proof_is_accepted() -> None:
    check_extends(seen(13), checkpoint(40), TREE.consistency_proof(13, 40))
    check_extends(seen(13), checkpoint(13), [])


def test_a_shorter_log_is_refused_as_truncated() -> None:
    with pytest.raises(WitnessRefused) as exc:
        check_extends(seen(30), checkpoint(20), [])
    assert exc.value.code == "truncated" and "30" in exc.value.message and "20" in exc.value.message


def test_another_tree_of_the_same_size_is_refused_as_forked() -> None:
    forked = MerkleTree([leaf_hash(b"other"), *LEAVES[1:]])
    with pytest.raises(WitnessRefused) as exc:
        check_extends(seen(20), checkpoint(20, forked), [])
    assert exc.value.code == "forked"


def test_a_grown_tree_that_rewrote_old_leaves_fails_its_proof() -> None:
    forked = MerkleTree([*LEAVES[:5], leaf_hash(b"rewritten"), *LEAVES[6:]])
    with pytest.raises(WitnessRefused) as exc:
        check_extends(seen(13), checkpoint(40, forked), forked.consistency_proof(13, 40))
    assert exc.value.code == "forked"
    with pytest.raises(WitnessRefused):  # and no proof at all proves nothing
        check_extends(seen(13), checkpoint(40), [])


def test_a_checkpoint_not_signed_by_the_pinned_gateway_key_is_refused() -> None:
    check_signed(checkpoint(5), SIGNER.verifier())
    with pytest.raises(WitnessRefused) as exc:
        check_signed(checkpoint(5), Signer.generate().verifier())
    assert exc.value.code == "forged"
