"""Find a printer's embedded web server: which port, which scheme, which certificate.

Tried in order of the configured candidates (HTTPS first by default). For
HTTPS the certificate's SHA-256 fingerprint (DER) is returned so the cloud can
pin it on first discovery. When no candidate answers, ``probe_ews`` says how
each one failed (refused, timed out, TLS error, unreachable).

``EwsHysteresis`` decides what a sweep reports: a web page that answered once is
kept through transient failures and only given up ("no web page") after several
failed sweeps in a row over a minimum time (issue 13 follow-up).
"""

from __future__ import annotations

import asyncio
import errno
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent.verify import tls_certificate_sha256
from printgate.errors import PrintgateError


@dataclass(frozen=True, slots=True)
class EwsEndpoint:
    port: int
    scheme: str
    tls_fingerprint: str | None = None


@dataclass(frozen=True, slots=True)
class EwsAttempt:
    """One candidate that did not answer, and how."""

    port: int
    scheme: str
    failure: str  # "refused", "timed out after 2 s", "TLS error: ...", "unreachable: ..."

    def describe(self) -> str:
        return f"{self.port}/{self.scheme} {self.failure}"


@dataclass(frozen=True, slots=True)
class EwsNotFound:
    """No candidate answered: each one tried, with how it failed."""

    tried: tuple[EwsAttempt, ...]

    def describe(self) -> str:
        if not self.tried:
            return "no web ports configured to try (ews_candidates is empty)"
        return "; ".join(a.describe() for a in self.tried)


DEFAULT_CANDIDATES: tuple[tuple[int, str], ...] = ((443, "https"), (80, "http"))


def _os_failure(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED:
        return "refused"
    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable (no route to host)"
    if isinstance(exc, ConnectionResetError):
        return "reset by the device"
    return f"unreachable: {exc.strerror or exc}"


async def _tcp_failure(ip: str, port: int, timeout: float) -> str | None:
    """None when the port accepts a TCP connection, else how it failed."""
    try:
        _r, w = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout)
    except TimeoutError:
        return f"timed out after {timeout:g} s"
    except OSError as exc:
        return _os_failure(exc)
    w.close()
    return None


async def probe_ews(
    ip: str, candidates: Sequence[tuple[int, str]] = DEFAULT_CANDIDATES, *, timeout: float = 2.0
) -> EwsEndpoint | EwsNotFound:
    """The first candidate port that answers (scheme, certificate), or how every one failed."""
    tried: list[EwsAttempt] = []
    for port, scheme in candidates:
        failure = await _tcp_failure(ip, port, timeout)
        if failure is None and scheme == "https":
            try:
                fingerprint = await tls_certificate_sha256(ip, port, timeout=timeout)
            except TimeoutError:
                failure = f"TLS error: no handshake within {timeout:g} s"
            except ssl.SSLError as exc:
                failure = f"TLS error: {exc.reason or exc}"
            except OSError as exc:
                failure = f"TLS error: {_os_failure(exc)}"
            except PrintgateError as exc:
                failure = f"TLS error: {exc.message}"
            else:
                return EwsEndpoint(port, "https", fingerprint)
        if failure is None:
            return EwsEndpoint(port, scheme)
        tried.append(EwsAttempt(port, scheme, failure))
    return EwsNotFound(tuple(tried))


async def find_ews(
    ip: str, candidates: Sequence[tuple[int, str]] = DEFAULT_CANDIDATES, *, timeout: float = 2.0
) -> EwsEndpoint | None:
    """The first candidate port that answers, with its scheme and certificate."""
    found = await probe_ews(ip, candidates, timeout=timeout)
    return found if isinstance(found, EwsEndpoint) else None


@dataclass(slots=True)
class _Seen:
    good: EwsEndpoint | None  # the last endpoint that answered
    misses: int = 0  # failed probes in a row since
    first_miss: float | None = None
    last_seen: float = 0.0


class EwsHysteresis:
    """What each sweep reports for a printer's web page.

    A printer's last good endpoint is kept while its probes fail, until ``misses`` sweeps in a
    row failed AND at least ``min_span_s`` passed since the first of them; only then is it "no web
    page" (port 0). One answering probe resets the count. A printer never seen with a web page is
    reported without one at once. Keys name the device (address plus serial or MAC), so another
    device at the same address does not inherit the port.
    """

    def __init__(self, *, misses: int = 3, min_span_s: float = 600.0,
                 clock: Callable[[], float] = time.monotonic, forget_after_s: float = 86400.0) -> None:
        if misses < 1:
            raise ValueError("misses must be at least 1")
        self.misses = misses
        self.min_span_s = min_span_s
        self._clock = clock
        self._forget_after = forget_after_s
        self._seen: dict[str, _Seen] = {}

    @staticmethod
    def key(ip: str, serial: str | None = None, mac: str | None = None) -> str:
        return f"{ip}|{serial or mac or ''}"

    def seed(self, key: str, endpoint: EwsEndpoint) -> None:
        """Start from an endpoint reported before (e.g. the agent's saved inventory)."""
        self._seen.setdefault(key, _Seen(good=endpoint, last_seen=self._clock()))

    def observe(self, key: str, result: EwsEndpoint | EwsNotFound | None) -> EwsEndpoint | None:
        """This sweep's probe result -> the endpoint to report (None: no web page)."""
        now = self._clock()
        self._forget(now)
        seen = self._seen.get(key)
        if isinstance(result, EwsEndpoint):
            self._seen[key] = _Seen(good=result, last_seen=now)
            return result
        if seen is None or seen.good is None:
            self._seen[key] = _Seen(good=None, last_seen=now)
            return None
        seen.misses += 1
        seen.last_seen = now
        if seen.first_miss is None:
            seen.first_miss = now
        if seen.misses >= self.misses and now - seen.first_miss >= self.min_span_s:
            seen.good = None  # given up: reported without a web page from now on
            return None
        return seen.good

    def misses_of(self, key: str) -> int:
        seen = self._seen.get(key)
        return seen.misses if seen is not None else 0

    def _forget(self, now: float) -> None:
        stale = [k for k, s in self._seen.items() if now - s.last_seen > self._forget_after]
        for k in stale:
            del self._seen[k]
