"""structlog set-up: JSON key-value events for operators (never secrets)."""

from __future__ import annotations

import logging
import sys

import structlog


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time of the write: a process whose stderr is
    replaced (a daemon's redirect, a test harness's capture that is later closed) never logs
    into a closed file, which would turn a log line into an exception in the caller."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str = "info", *, json: bool = True) -> None:
    """Configure structlog once at start-up (called by the composition root)."""
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(message)s")
    # asyncssh logs three info lines per accepted TCP connection: a connection flood on the relay
    # would flood the log too (the relay logs its refusals once per source and window itself)
    logging.getLogger("asyncssh").setLevel(max(numeric, logging.WARNING))
    # alembic says "setup plugin alembic.autogenerate.…", "Context impl …" and one "Running upgrade …"
    # per migration at every start and `db upgrade` (which says what it did itself): noise, not news
    logging.getLogger("alembic").setLevel(max(numeric, logging.WARNING))
    # mitmproxy's own start lines ("reverse proxy to http://127.0.0.1:9 listening at …", the
    # placeholder upstream; "tls_version_server_min has been set to UNBOUNDED …", on purpose for old
    # printers) are info about its internals, not about printgate's proxy (which logs dwa.* itself)
    logging.getLogger("mitmproxy").setLevel(max(numeric, logging.WARNING))
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
