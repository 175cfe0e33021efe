"""The JSONL line format of an audit export, and the items a verifier reads.

One JSON value per line (``\\n`` separated):

* a **record** line is the entry's RFC 8785 bytes exactly as hashed (it
  always starts with ``{"at":``); its hash is ``SHA-256(line)``;
* every other line is an object with a single ``@``-prefixed key:
  ``{"@header": {...}}`` (first line: format, version, key id, subset flag),
  ``{"@tombstone": {"seq", "hash", "prev", "pruned_by"}}`` (content removed by
  retention), ``{"@checkpoint": {...signed tree head...}}`` (placed right after
  record ``tree_size``), ``{"@personal": {"seq", "fields": {name: {"value",
  "salt"}}}}`` (clear personal values disclosed for the preceding record) and
  ``{"@proof": {"seq", "tree_size", "path": [hex...]}}`` (inclusion proof of
  the preceding record, in subset exports), ``{"@cosignature": {...}}`` (a
  witness's cosignature of a checkpoint, ``audit.cosignature``; placed right
  after the header so a verifier holds them before the records they cover)
  and, in subset exports, ``{"@consistency": {"first", "second", "path"}}``
  (RFC 6962 proof that the tree a witness cosigned is a prefix of the
  export's checkpoint).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from audit.canonical import canonical_bytes
from audit.checkpoint import Checkpoint
from audit.cosignature import Cosignature

FORMAT = "printgate-audit-export"
FORMAT_VERSION = 1


class RecordItem(NamedTuple):
    """A record line (a NamedTuple: a million of them are made per verify)."""

    data: bytes
    line: int = 0


@dataclass(frozen=True, slots=True)
class TombstoneItem:
    seq: int
    hash: str
    prev: str
    pruned_by: int
    line: int = 0


@dataclass(frozen=True, slots=True)
class CheckpointItem:
    checkpoint: Checkpoint
    line: int = 0


@dataclass(frozen=True, slots=True)
class CosignatureItem:
    cosignature: Cosignature
    line: int = 0


@dataclass(frozen=True, slots=True)
class ConsistencyItem:
    first: int
    second: int
    path: list[str]
    line: int = 0


@dataclass(frozen=True, slots=True)
class PersonalItem:
    seq: int
    fields: dict[str, tuple[str, str]]  # name -> (value, salt hex)
    line: int = 0


@dataclass(frozen=True, slots=True)
class ProofItem:
    seq: int
    tree_size: int
    path: list[str]
    line: int = 0


@dataclass(frozen=True, slots=True)
class HeaderItem:
    meta: dict[str, object] = field(default_factory=dict)
    line: int = 0


@dataclass(frozen=True, slots=True)
class MalformedItem:
    reason: str
    line: int = 0


Item = (RecordItem | TombstoneItem | CheckpointItem | CosignatureItem | ConsistencyItem | PersonalItem | ProofItem
        | HeaderItem | MalformedItem)


def header_line(meta: dict[str, object]) -> bytes:
    return canonical_bytes({"@header": {"format": FORMAT, "version": FORMAT_VERSION, **meta}})


def tombstone_line(seq: int, hash_: str, prev: str, pruned_by: int) -> bytes:
    return canonical_bytes({"@tombstone": {"hash": hash_, "prev": prev, "pruned_by": pruned_by, "seq": seq}})


def checkpoint_line(cp: Checkpoint) -> bytes:
    return canonical_bytes({"@checkpoint": cp.to_json()})


def cosignature_line(cosig: Cosignature) -> bytes:
    return canonical_bytes({"@cosignature": cosig.to_json()})


def consistency_line(first: int, second: int, path: list[bytes]) -> bytes:
    return canonical_bytes({"@consistency": {"first": first, "path": [p.hex() for p in path], "second": second}})


def personal_line(seq: int, fields: dict[str, tuple[str, str]]) -> bytes:
    return canonical_bytes({"@personal": {
        "fields": {k: {"salt": s, "value": v} for k, (v, s) in fields.items()}, "seq": seq}})


def proof_line(seq: int, tree_size: int, path: list[bytes]) -> bytes:
    return canonical_bytes({"@proof": {"path": [p.hex() for p in path], "seq": seq, "tree_size": tree_size}})


def parse_line(raw: bytes, line: int) -> Item:
    """One export line as an item (record lines are not parsed here)."""
    if raw.startswith(b'{"at":'):
        return RecordItem(raw, line)
    try:
        obj = json.loads(raw)
        (key, body), = obj.items()
        if key == "@checkpoint":
            return CheckpointItem(Checkpoint.from_json(body), line)
        if key == "@cosignature":
            return CosignatureItem(Cosignature.from_json(body), line)
        if key == "@consistency":
            return ConsistencyItem(int(body["first"]), int(body["second"]), [str(p) for p in body["path"]], line)
        if key == "@tombstone":
            return TombstoneItem(int(body["seq"]), str(body["hash"]), str(body["prev"]),
                                 int(body["pruned_by"]), line)
        if key == "@personal":
            fields = {str(k): (str(v["value"]), str(v["salt"])) for k, v in body["fields"].items()}
            return PersonalItem(int(body["seq"]), fields, line)
        if key == "@proof":
            return ProofItem(int(body["seq"]), int(body["tree_size"]), [str(p) for p in body["path"]], line)
        if key == "@header":
            return HeaderItem(dict(body), line)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return MalformedItem(f"unreadable line: {exc}", line)
    return MalformedItem(f"unknown line kind {raw[:20]!r}", line)


def read_export(path: Path | str) -> Iterator[Item]:
    with open(path, "rb", buffering=1 << 20) as fh:
        for n, raw in enumerate(fh, start=1):
            raw = raw.rstrip(b"\r\n")
            if raw.startswith(b'{"at":'):
                yield RecordItem(raw, n)
            elif raw:
                yield parse_line(raw, n)
