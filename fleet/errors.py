"""The fleet's errors and their codes (see ``printgate.errors`` for the tree)."""

from __future__ import annotations

from printgate.errors import PrintgateError

INGEST_BUSY = "fleet_ingest_busy"


class IngestBusy(PrintgateError):
    """Ingest is behind (its in-flight bound is reached): the agent keeps the batch and
    retries after ``retry_after_s``."""

    code = INGEST_BUSY

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


RETENTION_INVALID = "fleet_retention_invalid"


class RetentionInvalid(PrintgateError):
    """A readings retention that cannot be set: days out of range or an unknown dealer."""

    code = RETENTION_INVALID
