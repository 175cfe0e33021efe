from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    MerkleTree,
    consistency_proof_from,
    leaf_hash,
    node_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)


def reference_mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1, literally."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(reference_mth(leaves[:k]), reference_mth(leaves[k:]))


def leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def test_known_answer_for_rfc6962_leaf_and_node_prefixes() -> None:
    assert leaf_hash(b"") == bytes.fromhex("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
    assert root_of([]) == EMPTY_ROOT


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=70))
def test_frontier_and_tree_roots_equal_the_rfc6962_definition(n: int) -> None:
    ls = leaves(n)
    f = Frontier()
    for i, leaf in enumerate(ls):
        f.append(leaf)
        assert f.root() == reference_mth(ls[: i + 1])
    restored = Frontier(f.size, f.hashes())
    assert restored.root() == f.root()
    if n:
        assert MerkleTree(ls).root() == reference_mth(ls)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_every_inclusion_proof_verifies_and_a_wrong_leaf_does_not(data: st.DataObject) -> None:
    size = data.draw(st.integers(min_value=1, max_value=80))
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    ls = leaves(size + 5)
    tree = MerkleTree(ls)
    root = tree.root(size)
    proof = tree.inclusion_proof(index, size)
    assert verify_inclusion(ls[index], index, size, proof, root)
    assert not verify_inclusion(ls[index], (index + 1) % size, size, proof, root) or size == 1
    assert not verify_inclusion(leaf_hash(b"forged"), index, size, proof, root)
    if proof:
        bad = [*proof[:-1], node_hash(proof[-1], proof[-1])]
        assert not verify_inclusion(ls[index], index, size, bad, root)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_consistency_proofs_verify_between_any_two_sizes(data: st.DataObject) -> None:
    new = data.draw(st.integers(min_value=1, max_value=80))
    old = data.draw(st.integers(min_value=1, max_value=new))
    ls = leaves(new)
    tree = MerkleTree(ls)
    proof = tree.consistency_proof(old, new)
    assert verify_consistency(old, new, tree.root(old), tree.root(new), proof)
    if old < new:
        forked = MerkleTree([*ls[: old - 1], leaf_hash(b"other"), *ls[old:]])
        assert not verify_consistency(old, new, forked.root(old), tree.root(new), proof)
        assert not verify_consistency(old, new, tree.root(old), forked.root(new), proof)


def test_consistency_proofs_from_a_frontier_equal_the_full_tree_ones() -> None:
    """The witness API's proof reads only the records after the old checkpoint."""
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(70)]
    tree = MerkleTree(leaves)
    for n in range(2, 71):
        for m in range(1, n):
            old = Frontier()
            for leaf in leaves[:m]:
                old.append(leaf)
            proof = consistency_proof_from(old, leaves[m:n])
            assert proof == tree.consistency_proof(m, n), (m, n)
            assert verify_consistency(m, n, tree.root(m), tree.root(n), proof)
