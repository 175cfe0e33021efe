"""The agent CA's CRL for the MQTT broker: written on every revocation, re-issued before it expires.

Mosquitto checks agent client certificates against ``crlfile`` and re-reads
it on SIGHUP. ``CrlPublisher.publish`` writes the file atomically (readable by
the broker's user) and then asks the broker to reload: by a SIGHUP to the pid
in ``broker_pid_file`` when the broker runs on this host, else the deploy
config's systemd path unit notices the new file. A CRL past its next update
makes OpenSSL refuse every client, so the gateway re-issues it daily.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.channel.ca import AgentCA
from printgate.logs import get_logger

log = get_logger(__name__)
VALIDITY = timedelta(days=7)
REISSUE_AFTER = timedelta(days=1)


def signal_pid_file(pid_file: Path) -> Callable[[], None]:
    """A reload that sends SIGHUP to the process whose pid ``pid_file`` holds."""

    def reload() -> None:
        try:
            pid = int(pid_file.read_text().strip())
            os.kill(pid, signal.SIGHUP)
        except (OSError, ValueError) as exc:
            log.warning("mqtt.crl.reload_failed", pid_file=str(pid_file), error=str(exc),
                        hint="the broker keeps the old CRL until it is reloaded (systemctl reload mosquitto)")

    return reload


class CrlPublisher:
    def __init__(self, ca: AgentCA, path: Path, *, reload: Callable[[], None] | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.path = path
        self._ca, self._reload, self._clock = ca, reload, clock
        self._published: frozenset[str] | None = None
        self._issued_at: datetime | None = None

    def due(self, serials: set[str]) -> bool:
        """Whether the CRL on disk is missing, stale or lists other serials than ``serials``."""
        return (self._published != frozenset(serials) or self._issued_at is None
                or self._clock() - self._issued_at > REISSUE_AFTER)

    def publish(self, serials: set[str]) -> None:
        now = self._clock()
        pem = self._ca.issue_crl(serials, validity=VALIDITY, now=now)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_bytes(pem)
        tmp.chmod(0o644)  # the broker runs as its own user
        tmp.replace(self.path)
        self._published, self._issued_at = frozenset(serials), now
        log.info("mqtt.crl.published", path=str(self.path), revoked=len(serials))
        if self._reload is not None:
            self._reload()
