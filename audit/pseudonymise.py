"""GDPR erasure of a person's identifying values without breaking the chain.

The chain commits only to salted hashes of personal fields (``audit.chain``);
erasing deletes the clear values and their salts from ``audit_personal``.
Verification still passes (nothing hashed changed) and the remaining
commitments cannot be linked back to the person without the salts. Erasing
an actor also erases the records where the person is another personal field
(``AuditEventIn.personal``, e.g. the ``subject`` of an administrator's
action), and pseudonymises the person's own account (``users``: e-mail and
name replaced, sign-in disabled, TOTP and recovery secrets removed) and the
stored security alerts that name the person (``security_subscriptions.erase_person``).

The erasure is itself audited, in the same transaction, without the erased
value: ``audit.personal.erased`` names the erased records in ``seq_ranges``
so that a verifier can tell an erasure from a value row deleted behind the
log's back (``audit.verify``). Afterwards the freed bytes are purged from the
database files where the backend allows it (``printgate.store.erasure``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from audit.chain import ERASURE_EVENT
from audit.log import AuditLog
from audit.retention import to_ranges
from printgate.domain import AuditEventIn
from printgate.logs import get_logger
from printgate.store import audit as store
from printgate.store import erasure, security_subscriptions

log = get_logger("audit.pseudonymise")


@dataclass(frozen=True, slots=True)
class Erasure:
    records: int
    seq_ranges: list[tuple[int, int]]
    user_id: str | None  # the account pseudonymised, if the value was a user's e-mail
    record_seq: int  # the audit.personal.erased record
    purged: bool  # the freed bytes are gone from the database files (see printgate.store.erasure)
    purge_detail: str


async def erase(audit_log: AuditLog, *, field: str = "actor", value: str, requested_by: str) -> Erasure:
    """Erase every clear ``field`` = ``value`` (and the other personal values of
    those records); for an actor also the account with that e-mail."""
    async with audit_log.db.transaction() as s:
        await store.lock_head(s)
        seqs = await store.erase_personal(s, field=field, value=value, any_field=field == "actor")
        name = await erasure.display_name_of(s, value) if field == "actor" else None
        user_id = await erasure.pseudonymise_user(s, value, now=datetime.now(UTC)) if field == "actor" else None
        # security alerts name the person too (subjects, texts, samples, delivery targets)
        alerts = await security_subscriptions.erase_person(
            s, [value], replacement=erasure.pseudonym_email(user_id) if user_id else erasure.ERASED_VALUE)
        if name and name != erasure.ERASED_NAME:
            alerts += await security_subscriptions.erase_person(s, [name], replacement=erasure.ERASED_NAME)
        ranges = to_ranges(seqs)
        (rec,) = await audit_log.append_in(s, [AuditEventIn(
            type=ERASURE_EVENT, actor=requested_by,
            details={"field": field, "records": len(seqs), "seq_ranges": [list(r) for r in ranges],
                     "user_id": user_id, "security_alerts": alerts},
        )])
    purge = await erasure.purge_freed_pages(audit_log.db)
    log.info("audit.personal_erased", field=field, records=len(seqs), user=user_id, purged=purge.complete)
    if not purge.complete:
        log.warning("audit.erase_not_purged", detail=purge.detail)
    return Erasure(len(seqs), ranges, user_id, rec.seq, purge.complete, purge.detail)


async def erase_subject(audit_log: AuditLog, *, field: str = "actor", value: str, requested_by: str) -> int:
    """``erase`` returning only the number of records affected."""
    return (await erase(audit_log, field=field, value=value, requested_by=requested_by)).records
