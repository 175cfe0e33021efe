"""Offline verification of an audit stream (export file or live store).

Needs only the checkpoint public key, or a key set (``audit.keyset``): every
key the gateway signed with, each with its validity period; a checkpoint is
checked against the key it names and refused outside that key's period. Checks, in one streaming pass:
gap-free sequence from 1, every ``prev`` link, every signed checkpoint
(signature, Merkle root of the first ``tree_size`` leaves, chain head),
disclosed personal values against their salted commitments, and that every
tombstone (content pruned by retention) is covered by a later
``audit.retention.pruned`` record. In a stream with personal values (the
live store, ``export --with-personal``) every record that commits to
personal values must carry them, unless a later ``audit.personal.erased``
record names it in its ``seq_ranges``: a deleted value row is damage. The first failure is reported as a
``Problem`` naming the record (seq and line) and the kind of ``Damage``.

Witnesses (``audit.witness``) countersign checkpoints; given their public
keys, every valid cosignature in the stream (or kept elsewhere) is an anchor
the log must still match: a tail cut or a history rewritten after a witness
saw it is named with the witness and the checkpoint, and a named witness
that cosigned nothing is itself a failure (``Damage.UNWITNESSED``).

Subset exports (one tenant's records) carry an inclusion proof per record
instead of a contiguous chain; each record is checked against a signed
checkpoint.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from hashlib import sha256 as _sha256

from audit.chain import (
    ENTRY_TAIL,
    ERASURE_EVENT,
    GENESIS,
    RETENTION_EVENT,
    commit_personal,
    entry_hash,
    link_of,
)
from audit.checkpoint import Checkpoint, CheckpointVerifier
from audit.cosignature import Cosignature, WitnessVerifier
from audit.damage import Damage, Problem, VerifyReport, WitnessMark
from audit.keyset import AuditKeySet
from audit.merkle import Frontier
from audit.stream import (
    CheckpointItem,
    CosignatureItem,
    HeaderItem,
    Item,
    MalformedItem,
    PersonalItem,
    ProofItem,
    RecordItem,
    TombstoneItem,
)
from audit.verify_subset import verify_subset

_RETENTION_MARKER = b'"type":"' + RETENTION_EVENT.encode() + b'"'
_ERASURE_MARKER = b'"type":"' + ERASURE_EVENT.encode() + b'"'
_AUDIT_MARKER = b'"type":"audit.'  # both of the above: such records take the slow path
_NO_PERSONAL = b',"personal":{}'  # right before the top-level ',"prev":"' when nothing is committed


class _Peek:
    def __init__(self, items: Iterable[Item]) -> None:
        self._it = iter(items)
        self._buf: deque[Item] = deque()

    def __iter__(self) -> Iterator[Item]:
        return self

    def __next__(self) -> Item:
        return self._buf.popleft() if self._buf else next(self._it)

    def ahead(self, n: int) -> list[Item]:
        while len(self._buf) < n:
            try:
                self._buf.append(next(self._it))
            except StopIteration:
                break
        return list(self._buf)[:n]


def _link(item: RecordItem | TombstoneItem) -> tuple[str, int, str] | None:
    """``(prev, seq, hash)`` of a chain item."""
    if isinstance(item, TombstoneItem):
        return item.prev, item.seq, item.hash
    link = link_of(item.data)
    if link is None:
        return None
    return link[0], link[1], entry_hash(item.data)


def _chain_items(items: list[Item]) -> list[tuple[str, int, str]]:
    out = []
    for it in items:
        if isinstance(it, RecordItem | TombstoneItem):
            link = _link(it)
            if link is not None:
                out.append(link)
    return out


class _Fail(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


def verify_items(
    items: Iterable[Item], verifier: CheckpointVerifier | AuditKeySet | None, *,
    anchors: Sequence[Checkpoint] = (), window: int = 1024,
    witnesses: Sequence[WitnessVerifier] = (), cosignatures: Sequence[Cosignature] = (),
) -> VerifyReport:
    """Verify a stream of export items; never raises for damage, reports it.

    ``anchors`` are signed checkpoints obtained earlier and kept elsewhere (by a
    customer, a syslog collector): the stream must still contain the history
    they sign, which catches truncation of the newest records together with
    their checkpoints. ``witnesses`` are the public keys of witnesses whose
    cosignatures (in the stream, or ``cosignatures`` kept elsewhere, e.g. a
    witness's state file) the log must honour.
    """
    state = _State(verifier, window, witnesses)
    try:
        for cp in anchors:
            state.checkpoint(CheckpointItem(cp, 0), _Peek(()))
        for cosig in cosignatures:
            state.cosignature(CosignatureItem(cosig, 0), _Peek(()))
        state.run(_Peek(items))
    except _Fail as fail:
        return state.report(fail.problem)
    return state.report(None)


class _State:
    def __init__(self, verifier: CheckpointVerifier | AuditKeySet | None, window: int,
                 witnesses: Sequence[WitnessVerifier] = ()) -> None:
        self.verifier = verifier
        self.witnesses = {w.key_id: w for w in witnesses}
        self.cosigned: dict[str, Cosignature] = {}  # newest valid cosignature per witness
        self.labels: dict[int, str] = {}  # tree size -> the witness that cosigned it
        self.window = window
        self.expected = 1
        self.prev = GENESIS
        self.prev_line = 0
        self.frontier = Frontier()
        self.pending: dict[int, CheckpointItem] = {}
        self.checkpoints = 0
        self.anchored = 0
        self.records = 0
        self.tombstones: list[TombstoneItem] = []
        self.authorised: list[tuple[int, int]] = []
        self.erased: list[tuple[int, int]] = []
        self.with_personal = False  # the stream discloses personal values (header)
        self.awaiting: tuple[int, int] | None = None  # (seq, line) whose values must follow
        self.unvalued: list[tuple[int, int]] = []
        self.last_record: RecordItem | None = None
        self.personal_checked = 0
        self.root = b""

    def report(self, problem: Problem | None) -> VerifyReport:
        return VerifyReport(
            ok=problem is None, records=self.records, tombstones=len(self.tombstones),
            checkpoints=self.checkpoints, anchored=self.anchored, head=self.prev,
            root=self.frontier.root().hex(), personal_checked=self.personal_checked,
            problem=problem,
            witnessed=tuple(WitnessMark(c.witness, c.checkpoint.tree_size, c.cosigned_at)
                            for _, c in sorted(self.cosigned.items())),
        )

    def fail(self, kind: Damage, seq: int | None, line: int | None, message: str) -> _Fail:
        return _Fail(Problem(kind, seq, line, message))

    def run(self, peek: _Peek) -> None:
        sha, tail, special, none = _sha256, ENTRY_TAIL, _AUDIT_MARKER, _NO_PERSONAL
        append, pending = self.frontier.append, self.pending
        for item in peek:
            if type(item) is RecordItem:
                # fast path: an intact record in place; anything else takes chain()
                data = item.data
                at = data.rfind(b',"prev":"')
                m = tail.match(data, at)
                if (m is not None and int(m.group(2)) == self.expected and special not in data
                        and m.group(1).decode() == self.prev):
                    if self.awaiting is not None:
                        self.unvalued.append(self.awaiting)
                        self.awaiting = None
                    if self.with_personal and not data.startswith(none, at - len(none)):
                        self.awaiting = (self.expected, item.line)
                    digest = sha(data).digest()
                    append(sha(b"\x00" + digest).digest())
                    self.prev, self.prev_line = digest.hex(), item.line
                    self.expected += 1
                    self.records += 1
                    self.last_record = item
                    if pending:
                        cp = pending.pop(self.frontier.size, None)
                        if cp is not None:
                            self.match_checkpoint(cp, peek)
                    continue
                self.chain(item, peek)
            elif isinstance(item, TombstoneItem):
                self.chain(item, peek)
            elif isinstance(item, CheckpointItem):
                self.checkpoint(item, peek)
            elif isinstance(item, CosignatureItem):
                self.cosignature(item, peek)
            elif isinstance(item, PersonalItem):
                self.personal(item)
            elif isinstance(item, HeaderItem):
                self.with_personal = bool(item.meta.get("with_personal"))
                if item.meta.get("subset"):
                    verify_subset(self, peek)
                    return
            elif isinstance(item, MalformedItem):
                raise self.fail(Damage.MALFORMED, None, item.line, item.reason)
            elif isinstance(item, ProofItem):
                continue
        self.finish()

    def chain(self, item: RecordItem | TombstoneItem, peek: _Peek) -> None:
        if self.awaiting is not None:
            self.unvalued.append(self.awaiting)
            self.awaiting = None
        if isinstance(item, RecordItem):
            data = item.data
            at = data.rfind(b',"prev":"')
            m = ENTRY_TAIL.match(data, at)
            if m is None:
                raise self.fail(Damage.MALFORMED, None, item.line, "record line is not a canonical audit entry")
            digest = _sha256(data).digest()
            prev, seq, h = m.group(1).decode(), int(m.group(2)), digest.hex()
        else:
            prev, seq, h = item.prev, item.seq, item.hash
            try:
                digest = bytes.fromhex(h)
            except ValueError:
                raise self.fail(Damage.MALFORMED, item.seq, item.line, "tombstone hash is not hex") from None
        if seq != self.expected:
            raise self.misplaced(item, seq, h, peek)
        if prev != self.prev:
            raise self.broken_link(item, seq, h, peek)
        self.frontier.append(_sha256(b"\x00" + digest).digest())
        self.prev, self.prev_line, self.expected = h, item.line, seq + 1
        if isinstance(item, TombstoneItem):
            self.tombstones.append(item)
            self.last_record = None
        else:
            self.records += 1
            self.last_record = item
            if self.with_personal and not item.data.startswith(_NO_PERSONAL, at - len(_NO_PERSONAL)):
                self.awaiting = (seq, item.line)
            for marker, ranges in ((_RETENTION_MARKER, self.authorised), (_ERASURE_MARKER, self.erased)):
                if marker not in item.data:
                    continue
                try:
                    details = json.loads(item.data).get("details", {})
                    ranges.extend((int(a), int(b)) for a, b in details.get("seq_ranges", []))
                except (ValueError, TypeError, AttributeError):
                    raise self.fail(Damage.CHANGED, seq, item.line,
                                    f"record {seq} is no longer valid JSON with seq_ranges") from None
        cp = self.pending.pop(self.frontier.size, None)
        if cp is not None:
            self.match_checkpoint(cp, peek)

    def misplaced(self, item: RecordItem | TombstoneItem, seq: int, h: str, peek: _Peek) -> _Fail:
        exp = self.expected
        ahead = _chain_items(peek.ahead(self.window))
        ahead_seqs = {s for _, s, _ in ahead}
        if seq > exp:
            if exp in ahead_seqs:
                if seq in ahead_seqs:
                    return self.fail(Damage.INSERTED, seq, item.line,
                                     f"a record claiming seq {seq} was inserted before record {exp}")
                return self.fail(Damage.REORDERED, seq, item.line,
                                 f"record {seq} appears before record {exp}")
            missing = f"{exp}" if seq == exp + 1 else f"{exp}..{seq - 1}"
            return self.fail(Damage.DELETED, exp, item.line, f"record(s) {missing} are missing before this line")
        if seq == exp - 1 and ahead:
            nxt_prev = ahead[0][0]
            if nxt_prev == h:
                return self.fail(Damage.INSERTED, seq, self.prev_line,
                                 f"two records claim seq {seq}; the earlier one is not linked by record {seq + 1}")
        return self.fail(Damage.INSERTED, seq, item.line,
                         f"record claims seq {seq} but record {exp} was expected (duplicate or forged)")

    def broken_link(self, item: RecordItem | TombstoneItem, seq: int, h: str, peek: _Peek) -> _Fail:
        ahead = _chain_items(peek.ahead(1))
        if ahead and ahead[0][1] == seq:
            if ahead[0][0] == self.prev:
                return self.fail(Damage.INSERTED, seq, item.line,
                                 f"a second record with seq {seq} that is not linked into the chain")
        if ahead and ahead[0][0] != h:
            return self.fail(Damage.CHANGED, seq, item.line,
                             f"record {seq} was altered: it no longer links to record {seq - 1} "
                             f"and record {seq + 1} no longer links to it")
        if seq == 1:
            return self.fail(Damage.CHANGED, seq, item.line, "the first record does not start the chain")
        return self.fail(Damage.CHANGED, seq - 1, self.prev_line,
                         f"record {seq - 1} was altered: its hash is not the one record {seq} commits to")

    def cosignature(self, item: CosignatureItem, peek: _Peek) -> None:
        """A witness's cosignature: an anchor when the verifier trusts that witness."""
        if self.accept_cosignature(item):
            self.checkpoint(CheckpointItem(item.cosignature.checkpoint, item.line), peek, counted=False)

    def accept_cosignature(self, item: CosignatureItem) -> bool:
        """Check a cosignature of a named witness and note it; False for other witnesses."""
        c = item.cosignature
        w = self.witnesses.get(c.witness)
        if w is None:
            return False  # a witness this verifier did not name
        cp = c.checkpoint
        if not w.is_valid(c):
            raise self.fail(Damage.FORGED_CHECKPOINT, cp.tree_size, item.line or None,
                            f"the cosignature of checkpoint {cp.tree_size} claiming witness {c.witness} "
                            "has no valid signature by that witness")
        why = self.verifier.refusal(cp) if self.verifier is not None else None
        if why is not None:
            raise self.fail(Damage.FORGED_CHECKPOINT, cp.tree_size, item.line or None,
                            f"witness {c.witness} cosigned a checkpoint {cp.tree_size} that has no valid "
                            f"signature: {why}")
        newest = self.cosigned.get(c.witness)
        if newest is None or cp.tree_size > newest.checkpoint.tree_size:
            self.cosigned[c.witness] = c
        self.labels.setdefault(cp.tree_size, c.label())
        return True

    def checkpoint(self, item: CheckpointItem, peek: _Peek, *, counted: bool = True) -> None:
        cp = item.checkpoint
        why = self.verifier.refusal(cp) if self.verifier is not None else None
        if why is not None:
            raise self.fail(Damage.FORGED_CHECKPOINT, cp.tree_size, item.line,
                            f"checkpoint for tree size {cp.tree_size} has no valid signature: {why}")
        self.checkpoints += counted
        if cp.tree_size == self.frontier.size:
            self.match_checkpoint(item, peek)
        elif cp.tree_size > self.frontier.size:
            earlier = self.pending.get(cp.tree_size)
            if earlier is not None and (earlier.checkpoint.root, earlier.checkpoint.head) != (cp.root, cp.head):
                label = self.labels.get(cp.tree_size)
                if label is not None:
                    raise self.fail(Damage.REWRITTEN, cp.tree_size, item.line or None,
                                    f"{label} cosigned checkpoint {cp.tree_size}, but another validly signed "
                                    f"checkpoint {cp.tree_size} disagrees (roots {earlier.checkpoint.root[:16]}… "
                                    f"and {cp.root[:16]}…): the log was rewritten after the witness saw it")
                raise self.fail(Damage.REWRITTEN, cp.tree_size, item.line,
                                f"two validly signed checkpoints disagree about the first {cp.tree_size} "
                                "records: the signing key signed a forked history")
            self.pending[cp.tree_size] = item
        else:
            raise self.fail(Damage.MALFORMED, cp.tree_size, item.line,
                            f"checkpoint for tree size {cp.tree_size} appears after record {self.frontier.size}")

    def match_checkpoint(self, item: CheckpointItem, peek: _Peek) -> None:
        cp = item.checkpoint
        root = self.frontier.root().hex()
        if root == cp.root and self.prev == cp.head:
            self.anchored = cp.tree_size
            return
        first = self.anchored + 1
        label = self.labels.get(cp.tree_size)
        if label is not None:
            raise self.fail(Damage.REWRITTEN, cp.tree_size, None,
                            f"{label} cosigned checkpoint {cp.tree_size} (root {cp.root[:16]}…), but the log's "
                            f"first {cp.tree_size} records hash to root {root[:16]}…: the log was rewritten "
                            "after the witness saw it")
        nxt = _chain_items(peek.ahead(4))
        if cp.tree_size == first or (self.prev != cp.head and (not nxt or nxt[0][0] == cp.head)):
            raise self.fail(Damage.CHANGED, cp.tree_size, self.prev_line,
                            f"record {cp.tree_size} is not the record signed by checkpoint {cp.tree_size}")
        raise self.fail(Damage.REWRITTEN, first, None,
                        f"records {first}..{cp.tree_size} do not match the signed checkpoint "
                        f"{cp.tree_size}: changed and re-chained")

    def personal(self, item: PersonalItem) -> None:
        rec = self.last_record
        if rec is None or (link_of(rec.data) or ("", -1))[1] != item.seq:
            raise self.fail(Damage.MALFORMED, item.seq, item.line,
                            "personal values do not follow their record")
        if self.awaiting is not None and self.awaiting[0] == item.seq:
            self.awaiting = None
        try:
            committed = json.loads(rec.data).get("personal", {})
        except ValueError:
            raise self.fail(Damage.CHANGED, item.seq, rec.line,
                            f"record {item.seq} is no longer valid JSON") from None
        for name, (value, salt) in item.fields.items():
            try:
                ok = commit_personal(name, value, bytes.fromhex(salt)) == committed.get(name)
            except ValueError:
                ok = False
            if not ok:
                raise self.fail(Damage.CHANGED, item.seq, item.line,
                                f"clear personal field {name!r} of record {item.seq} does not match "
                                "its committed hash")
            self.personal_checked += 1
        gone = sorted(set(committed) - set(item.fields))
        if gone:
            raise self.fail(Damage.DELETED, item.seq, item.line,
                            f"personal value(s) {', '.join(gone)} of record {item.seq} were removed "
                            "although no erasure removed the record's values")

    def finish(self) -> None:
        if self.awaiting is not None:
            self.unvalued.append(self.awaiting)
            self.awaiting = None
        if self.pending:
            size = min(self.pending)
            have = self.frontier.size
            where = "known checkpoint" if self.pending[size].line == 0 else "checkpoint"
            label = self.labels.get(size)
            if label is not None:
                raise self.fail(Damage.DELETED, have + 1, None,
                                f"{label} cosigned checkpoint {size} over {size} records, but only {have} "
                                "are present: the tail of the log was cut after the witness saw it")
            raise self.fail(Damage.DELETED, have + 1, self.pending[size].line or None,
                            f"{where} {size} was signed over {size} records but only {have} are present")
        for t in self.tombstones:
            if not any(a <= t.seq <= b for a, b in self.authorised):
                raise self.fail(Damage.DELETED, t.seq, t.line,
                                f"content of record {t.seq} was removed without a retention record")
        for seq, line in self.unvalued:
            if not any(a <= seq <= b for a, b in self.erased):
                raise self.fail(Damage.DELETED, seq, line,
                                f"the personal values (who acted, from where) of record {seq} are "
                                "missing and no audit.personal.erased record covers it")
        self.require_witnesses()

    def require_witnesses(self) -> None:
        for key_id in sorted(set(self.witnesses) - set(self.cosigned)):
            raise self.fail(Damage.UNWITNESSED, None, None,
                            f"witness {key_id} cosigned no checkpoint of this log: it never ran against "
                            "this gateway, or its cosignatures were removed (compare with its state file)")
