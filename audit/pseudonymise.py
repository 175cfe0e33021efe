"""GDPR erasure of a person's identifying values without breaking the chain.

The chain commits only to salted hashes of personal fields (``audit.chain``);
erasing deletes the clear values and their salts from ``audit_personal``.
Verification still passes (nothing hashed changed) and the remaining
commitments cannot be linked back to the person without the salts. The
erasure is itself audited, without the erased value.
"""

from __future__ import annotations

from audit.log import AuditLog
from printgate.domain import AuditEventIn
from printgate.logs import get_logger
from printgate.store import audit as store

log = get_logger("audit.pseudonymise")


async def erase_subject(audit_log: AuditLog, *, field: str = "actor", value: str, requested_by: str) -> int:
    """Erase every clear ``field`` = ``value`` (and the other personal values of
    those records); returns the number of records affected."""
    affected = await store.erase_personal(audit_log.db, field=field, value=value)
    await audit_log.append(AuditEventIn(
        type="audit.personal.erased", actor=requested_by,
        details={"field": field, "records": affected},
    ))
    log.info("audit.personal_erased", field=field, records=affected)
    return affected
