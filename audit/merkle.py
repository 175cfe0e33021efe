"""RFC 6962 / RFC 9162 Merkle tree hashing, inclusion and consistency proofs (pure).

Hashes: ``leaf = SHA-256(0x00 || leaf_input)``, ``node = SHA-256(0x01 || left || right)``;
the tree head of ``n`` leaves is MTH(D[n]) of RFC 6962 section 2.1. In the audit
log the leaf input of record ``seq`` is its 32-byte record hash and it is leaf
index ``seq - 1``.

``Frontier`` is the compact range of a growing tree (the roots of the perfect
subtrees, largest first): appending is O(1) amortised and the root of the
current size costs O(log n), so a verifier never holds the whole tree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(leaf_input: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf_input).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaves: Sequence[bytes]) -> bytes:
    """MTH over already-hashed leaves (``leaf_hash`` values)."""
    if not leaves:
        return EMPTY_ROOT
    f = Frontier()
    for leaf in leaves:
        f.append(leaf)
    return f.root()


class Frontier:
    """Compact range of a Merkle tree growing from size 0: ``[(height, hash), ...]``."""

    __slots__ = ("_stack", "size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        heights = [h for h in range(size.bit_length() - 1, -1, -1) if size >> h & 1]
        if len(heights) != len(hashes):
            raise ValueError(f"a tree of {size} leaves has {len(heights)} frontier hashes")
        self.size = size
        self._stack: list[tuple[int, bytes]] = list(zip(heights, hashes, strict=True))

    def append(self, leaf: bytes) -> None:
        """Append an already-hashed leaf."""
        stack = self._stack
        height, value = 0, leaf
        while stack and stack[-1][0] == height:
            value = node_hash(stack.pop()[1], value)
            height += 1
        stack.append((height, value))
        self.size += 1

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        value = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            value = node_hash(left, value)
        return value

    def hashes(self) -> list[bytes]:
        return [h for _, h in self._stack]

    def copy(self) -> Frontier:
        return Frontier(self.size, self.hashes())


class MerkleTree:
    """All levels of a tree over hashed leaves, for producing proofs."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.levels: list[list[bytes]] = [list(leaves)]
        while len(self.levels[-1]) > 1:
            lower = self.levels[-1]
            upper = [node_hash(lower[i], lower[i + 1]) for i in range(0, len(lower) - 1, 2)]
            self.levels.append(upper)

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def subtree(self, start: int, end: int) -> bytes:
        """MTH of leaves[start:end]."""
        n = end - start
        if n <= 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and start % n == 0:
            return self.levels[n.bit_length() - 1][start // n]
        k = _split(n)
        return node_hash(self.subtree(start, start + k), self.subtree(start + k, end))

    def root(self, size: int | None = None) -> bytes:
        return self.subtree(0, self.size if size is None else size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 6962 PATH(m, D[size])."""
        if not 0 <= index < size <= self.size:
            raise ValueError(f"no leaf {index} in a tree of size {size}")
        return self._path(index, 0, size)

    def _path(self, m: int, start: int, end: int) -> list[bytes]:
        n = end - start
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return [*self._path(m, start, start + k), self.subtree(start + k, end)]
        return [*self._path(m - k, start + k, end), self.subtree(start, start + k)]

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        """RFC 6962 PROOF(old, D[new])."""
        if not 0 < old <= new <= self.size:
            raise ValueError(f"no consistency proof from size {old} to {new}")
        return self._subproof(old, 0, new, True)

    def _subproof(self, m: int, start: int, end: int, complete: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if complete else [self.subtree(start, end)]
        k = _split(n)
        if m <= k:
            return [*self._subproof(m, start, start + k, complete), self.subtree(start + k, end)]
        return [*self._subproof(m - k, start + k, end, False), self.subtree(start, start + k)]


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2: does ``leaf`` sit at ``index`` of the tree with ``root``?"""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 section 2.1.4.2: is the tree of ``old_root`` a prefix of ``new_root``'s?"""
    if old_size == new_size:
        return old_root == new_root and not proof
    if not 0 < old_size < new_size or not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


def consistency_proof_from(old: Frontier, newer_leaves: Sequence[bytes]) -> list[bytes]:
    """RFC 6962 PROOF(m, D[n]) from the frontier of the old tree (size m) and only the
    leaves ``m..n-1``: every proof node left of ``m`` is one of the frontier's perfect
    subtrees, every other node lies right of ``m``. Costs O(n - m), not O(n)."""
    m, n = old.size, old.size + len(newer_leaves)
    if not 0 < m < n:
        raise ValueError(f"no consistency proof from size {m} to {n}")
    perfect: dict[tuple[int, int], bytes] = {}
    start = 0
    for h, value in zip((h for h in range(m.bit_length() - 1, -1, -1) if m >> h & 1), old.hashes(), strict=True):
        perfect[(start, start + (1 << h))] = value
        start += 1 << h

    def subtree(a: int, b: int) -> bytes:
        if b <= m:
            return perfect[(a, b)]
        return root_of(newer_leaves[a - m:b - m])

    def subproof(mm: int, a: int, b: int, complete: bool) -> list[bytes]:
        size = b - a
        if mm == size:
            return [] if complete else [subtree(a, b)]
        k = _split(size)
        if mm <= k:
            return [*subproof(mm, a, a + k, complete), subtree(a + k, b)]
        return [*subproof(mm - k, a + k, b, False), subtree(a, a + k)]

    return subproof(m, 0, n, True)
