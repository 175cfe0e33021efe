"""Inclusion and consistency proofs from the live store, against signed checkpoints."""

from __future__ import annotations

from audit.merkle import Frontier, MerkleTree, consistency_proof_from, leaf_hash
from printgate.errors import NotFound
from printgate.store import audit as store
from printgate.store.db import Database


async def _tree(db: Database, size: int | None) -> tuple[MerkleTree, dict[str, object]]:
    cps = {int(c.tree_size): c for c in await store.checkpoints(db)}
    if not cps:
        raise NotFound("no signed checkpoint yet: run `printgate audit checkpoint --key KEY`")
    size = max(cps) if size is None else size
    cp = cps.get(size)
    if cp is None:
        raise NotFound(f"no signed checkpoint of tree size {size}; known sizes end at {max(cps)}")
    leaves: list[bytes] = []
    async for batch in store.iter_records(db):
        for row in batch:
            if row.seq > size:
                break
            leaves.append(leaf_hash(bytes.fromhex(row.hash)))
        if len(leaves) >= size:
            break
    checkpoint = {"tree_size": size, "root": cp.root, "head": cp.head, "at": cp.at,
                  "key_id": cp.key_id, "signature": cp.signature, "v": 1}
    return MerkleTree(leaves[:size]), checkpoint


async def inclusion_proof(db: Database, seq: int, tree_size: int | None = None) -> dict[str, object]:
    """Proof that record ``seq`` is leaf ``seq - 1`` of a signed checkpoint's tree."""
    tree, cp = await _tree(db, tree_size)
    size = int(str(cp["tree_size"]))
    if not 1 <= seq <= size:
        raise NotFound(f"record {seq} is not covered by checkpoint {size}")
    rows = [r async for batch in store.iter_records(db, seqs=[seq]) for r in batch]
    return {"seq": seq, "leaf_index": seq - 1, "record_hash": rows[0].hash, "entry": rows[0].entry,
            "path": [p.hex() for p in tree.inclusion_proof(seq - 1, size)], "checkpoint": cp}


async def consistency_proof(db: Database, old_size: int, new_size: int | None = None) -> dict[str, object]:
    """Proof that the tree of ``old_size`` is a prefix of a signed checkpoint's tree.

    From a checkpointed ``old_size`` (what a witness asks for) only the records
    after it are read: the stored frontier holds the older subtrees."""
    quick = await _from_frontier(db, old_size, new_size)
    if quick is not None:
        return quick
    tree, cp = await _tree(db, new_size)
    size = int(str(cp["tree_size"]))
    return {"old_size": old_size, "old_root": tree.root(old_size).hex(), "new_size": size,
            "path": [p.hex() for p in tree.consistency_proof(old_size, size)], "checkpoint": cp}


async def _from_frontier(db: Database, old_size: int, new_size: int | None) -> dict[str, object] | None:
    if new_size is None:
        return None
    old = await store.checkpoint_of_size(db, old_size)
    new = await store.checkpoint_of_size(db, new_size)
    if old is None or new is None or not old_size < new_size:
        return None
    frontier = Frontier(old_size, [bytes.fromhex(h) for h in old.frontier])
    async with db.session() as s:
        hashes = await store.record_hashes(s, old_size + 1, new_size)
    if len(hashes) != new_size - old_size:
        raise NotFound(f"records {old_size + 1}..{new_size} are not all stored: run `printgate audit verify`")
    path = consistency_proof_from(frontier, [leaf_hash(bytes.fromhex(h)) for h in hashes])
    checkpoint = {"tree_size": new_size, "root": new.root, "head": new.head, "at": new.at,
                  "key_id": new.key_id, "signature": new.signature, "v": 1}
    return {"old_size": old_size, "old_root": frontier.root().hex(), "new_size": new_size,
            "path": [p.hex() for p in path], "checkpoint": checkpoint}
