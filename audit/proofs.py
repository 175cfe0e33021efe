"""Inclusion and consistency proofs from the live store, against signed checkpoints."""

from __future__ import annotations

from audit.merkle import MerkleTree, leaf_hash
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
    """Proof that the tree of ``old_size`` is a prefix of a signed checkpoint's tree."""
    tree, cp = await _tree(db, new_size)
    size = int(str(cp["tree_size"]))
    return {"old_size": old_size, "old_root": tree.root(old_size).hex(), "new_size": size,
            "path": [p.hex() for p in tree.consistency_proof(old_size, size)], "checkpoint": cp}
