"""What verification reports: the kind of damage, the first bad record, the summary."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Damage(enum.StrEnum):
    CHANGED = "changed"
    DELETED = "deleted"
    REORDERED = "reordered"
    INSERTED = "inserted"
    FORGED_CHECKPOINT = "forged_checkpoint"
    REWRITTEN = "rewritten"  # consistent chain that contradicts a signed checkpoint
    MALFORMED = "malformed"
    UNWITNESSED = "unwitnessed"  # a witness named by the verifier cosigned nothing in this log


@dataclass(frozen=True, slots=True)
class Problem:
    kind: Damage
    seq: int | None
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"record {self.seq}" if self.seq is not None else "stream"
        if self.line:
            where += f" (line {self.line})"
        return f"{self.kind.value}: {where}: {self.message}"


@dataclass(frozen=True, slots=True)
class WitnessMark:
    """The newest checkpoint a witness cosigned that the log still holds."""

    witness: str  # key id
    tree_size: int
    cosigned_at: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    ok: bool
    records: int
    tombstones: int
    checkpoints: int
    anchored: int  # records covered by a verified signed checkpoint
    head: str
    root: str
    personal_checked: int
    problem: Problem | None = None
    witnessed: tuple[WitnessMark, ...] = ()

    @property
    def unanchored(self) -> int:
        return self.records + self.tombstones - self.anchored
