"""How to ask: SNMP GET / table walks over UDP (v1/v2c by hand, v3 with pysnmp 7).

One ``SnmpClient`` (one socket for communities, one pysnmp engine for v3,
loaded only if a v3 credential is used) serves every device. It bounds the
number of requests in flight and the packet rate, applies a per-request
timeout and retries, and converts answers into ``SnmpValue`` at once, so
nothing above this module sees a wire or pysnmp type.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.errors import (
    SNMP_AUTH_FAILED,
    SNMP_CONFIG,
    SNMP_ERROR_STATUS,
    SNMP_MALFORMED,
    SNMP_TIMEOUT,
    SNMP_UNREACHABLE,
)
from agent.snmp.community_udp import CommunityRequester, MalformedAnswer, Unreachable
from agent.snmp.oids import is_under
from agent.snmp.values import Kind, SnmpValue
from printgate.domain import SnmpCredential, SnmpVersion
from printgate.errors import SNMP_FAILED, SnmpError

if TYPE_CHECKING:
    from agent.snmp.usm import UsmRequester

_ERROR_STATUS = {
    1: "tooBig", 2: "noSuchName", 3: "badValue", 4: "readOnly", 5: "genErr", 6: "noAccess",
    7: "wrongType", 8: "wrongLength", 9: "wrongEncoding", 10: "wrongValue", 11: "noCreation",
    12: "inconsistentValue", 13: "resourceUnavailable", 14: "commitFailed", 15: "undoFailed",
    16: "authorizationError", 17: "notWritable", 18: "inconsistentName",
}


@dataclass(frozen=True, slots=True)
class SnmpTarget:
    ip: str
    port: int
    credential: SnmpCredential
    retries: int | None = None  # None: the client's; a host known to be alive gets more


class _RateLimit:
    """Token bucket: at most ``rate`` requests per second (bursts of ``rate/10``)."""

    def __init__(self, rate: float | None) -> None:
        self._rate = rate
        self._burst = max(1.0, (rate or 1) / 10)
        self._tokens = self._burst
        self._last = time.monotonic()
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        if not self._rate:
            return
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
                self._last = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self._rate)


class SnmpClient:
    """Shared SNMP requester with limits. Use as ``async with SnmpClient() as c``."""

    def __init__(
        self,
        *,
        timeout: float = 1.0,
        retries: int = 1,
        max_in_flight: int = 64,
        packets_per_second: float | None = None,
    ) -> None:
        self.timeout = timeout
        self.retries = retries
        # v1/v2c: our own hand-encoded requests on one socket (community_udp);
        # v3 needs pysnmp's full engine (USM, engine-id discovery), loaded lazily
        self._community = CommunityRequester()
        self._usm: UsmRequester | None = None
        self._sem = asyncio.Semaphore(max_in_flight)
        self._rate = _RateLimit(packets_per_second)
        self.requests = 0

    async def __aenter__(self) -> SnmpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._community.close()
        if self._usm is not None:
            self._usm.close()

    def _v3(self) -> UsmRequester:
        if self._usm is None:
            from agent.snmp.usm import UsmRequester

            self._usm = UsmRequester()
        return self._usm

    def _retries(self, t: SnmpTarget) -> int:
        return self.retries if t.retries is None else t.retries

    def _where(self, t: SnmpTarget) -> str:
        return f"{t.ip}:{t.port} ({t.credential.label})"

    def _timed_out(self, t: SnmpTarget) -> SnmpError:
        return SnmpError(
            f"no SNMP answer from {self._where(t)} within {self.timeout}s x{self._retries(t) + 1}: "
            "host unreachable, no SNMP agent, wrong community, or wrong v3 privacy key",
            code=SNMP_TIMEOUT,
        )

    async def _request(
        self, t: SnmpTarget, op: str, oids: Sequence[str], max_rep: int = 0, non_rep: int = 0
    ) -> list[tuple[str, SnmpValue]]:
        """One request; a v1 ``noSuchName`` drops the varbind it names and asks again (like net-snmp).

        SNMPv1 fails a whole PDU for one missing object and names it by its
        error-index: that object comes back absent (GET) or at the end of the
        MIB (GETNEXT) and the others are asked again, so one missing object
        never loses the rest. At most one re-ask per object.
        """
        asked = list(oids)
        live = list(range(len(asked)))
        dropped: dict[int, SnmpValue] = {}
        while True:
            status, index, result = await self._send(t, op, [asked[i] for i in live], max_rep, non_rep)
            if status != 2 or op not in ("get", "next"):
                break
            gone = SnmpValue(Kind.NO_SUCH_OBJECT if op == "get" else Kind.END_OF_MIB)
            if not 1 <= index <= len(live):  # no usable index: nothing to drop, all absent
                dropped.update((i, gone) for i in live)
                live, result, status = [], [], 0
                break
            dropped[live.pop(index - 1)] = gone
            if not live:
                result, status = [], 0
                break
        if status:
            name = _ERROR_STATUS.get(status, str(status))
            if status in (16, 6):  # authorizationError, noAccess
                raise SnmpError(
                    f"{t.ip}:{t.port} refused access ({name}) for {t.credential.label}",
                    code=SNMP_AUTH_FAILED,
                )
            at = asked[live[index - 1]] if 1 <= index <= len(live) else f"#{index}"
            raise SnmpError(f"{t.ip}:{t.port} answered error {name} at {at}", code=SNMP_ERROR_STATUS)
        if not dropped:
            return result
        if len(result) != len(live):  # a short answer: keep what is there
            return result
        answers = iter(result)
        return [(asked[i], dropped[i]) if i in dropped else next(answers) for i in range(len(asked))]

    async def _send(
        self, t: SnmpTarget, op: str, oids: Sequence[str], max_rep: int, non_rep: int
    ) -> tuple[int, int, list[tuple[str, SnmpValue]]]:
        if t.credential.version is SnmpVersion.V3:
            return await self._request_v3(t, op, oids, max_rep, non_rep)
        return await self._request_community(t, op, oids, max_rep, non_rep)

    async def _request_community(
        self, t: SnmpTarget, op: str, oids: Sequence[str], max_rep: int, non_rep: int
    ) -> tuple[int, int, list[tuple[str, SnmpValue]]]:
        cred = t.credential
        async with self._sem:
            await self._rate.take()
            self.requests += 1
            try:
                answer = await self._community.request(
                    t.ip, t.port, version=0 if cred.version is SnmpVersion.V1 else 1,
                    community=cred.community, op=op, oids=list(oids), max_repetitions=max_rep,
                    non_repeaters=non_rep, timeout=self.timeout, retries=self._retries(t),
                )
            except MalformedAnswer as exc:
                raise SnmpError(
                    f"{exc}; the device's SNMP agent sends broken packets ({t.credential.label})",
                    code=SNMP_MALFORMED,
                ) from None
            except TimeoutError:
                raise self._timed_out(t) from None
            except Unreachable as exc:
                raise SnmpError(
                    f"no SNMP agent at {t.ip}:{t.port}: the network answered {exc.strerror} "
                    "(port closed or host down)",
                    code=SNMP_UNREACHABLE,
                ) from None
        return answer.error_status, answer.error_index, answer.varbinds

    async def _request_v3(
        self, t: SnmpTarget, op: str, oids: Sequence[str], max_rep: int, non_rep: int
    ) -> tuple[int, int, list[tuple[str, SnmpValue]]]:
        from agent.snmp.usm import UsmFailed, UsmRefused

        usm = self._v3()
        usm.check(t.credential)  # a config error is raised before any packet
        async with self._sem:
            await self._rate.take()
            self.requests += 1
            try:
                return await usm.request(
                    t.ip, t.port, t.credential, op, oids, max_repetitions=max_rep, non_repeaters=non_rep,
                    timeout=self.timeout, retries=self._retries(t),
                )
            except TimeoutError:
                raise self._timed_out(t) from None
            except UsmRefused as exc:
                raise SnmpError(
                    f"SNMPv3 authentication refused by {self._where(t)}: {exc}; check user and keys",
                    code=SNMP_AUTH_FAILED,
                ) from None
            except UsmFailed as exc:
                raise SnmpError(f"SNMP request to {self._where(t)} failed: {exc}", code=SNMP_FAILED) from None

    async def get(
        self, t: SnmpTarget, oids: Iterable[str], *, chunk: int = 24, failures: list[str] | None = None,
    ) -> dict[str, SnmpValue]:
        """GET scalars (split in chunks); missing ones come back absent.

        With ``failures`` (a device known to answer), a chunk that fails is
        asked again object by object, like net-snmp's per-object retry; an
        object that still fails is left out and described in ``failures``.
        Without it, a failed request raises ``SnmpError``.
        """
        wanted = list(dict.fromkeys(oids))
        out: dict[str, SnmpValue] = {}
        for i in range(0, len(wanted), chunk):
            part = wanted[i : i + chunk]
            try:
                out.update(await self._request(t, "get", part))
            except SnmpError as exc:
                if failures is None or exc.code == SNMP_CONFIG:
                    raise
                if len(part) == 1:
                    failures.append(f"GET {part[0]}: {exc.message}")
                    continue
                for oid in part:
                    out.update(await self.get(t, [oid], failures=failures))
        return out

    async def next(self, t: SnmpTarget, oids: Iterable[str]) -> dict[str, SnmpValue]:
        """One GETNEXT: the first object after each of ``oids``."""
        return dict(await self._request(t, "next", list(oids)))

    async def walk(
        self,
        t: SnmpTarget,
        roots: Iterable[str],
        *,
        max_repetitions: int = 16,
        max_rows: int = 256,
        also_next: Sequence[str] = (),
        failures: list[str] | None = None,
    ) -> dict[str, SnmpValue]:
        """Walk several table columns at once (GETBULK; GETNEXT for v1), bounded.

        ``also_next``: OIDs whose single GETNEXT rides along the first GETBULK
        as non-repeaters (one round trip saved); their answers are included.
        With ``failures`` (a device known to answer), a failed combined
        request is continued column by column from where each column stood;
        a column that fails alone keeps the rows read so far and its failure
        is described in ``failures``. Without it, a failure raises.
        """
        return await self._walk(
            t, {r: r for r in dict.fromkeys(roots)}, max_repetitions, max_rows, also_next, failures
        )

    async def _walk(
        self, t: SnmpTarget, cursor: dict[str, str], max_repetitions: int, max_rows: int,
        also_next: Sequence[str], failures: list[str] | None, bulk: bool = True,
    ) -> dict[str, SnmpValue]:
        """``walk`` with each column (root -> last OID read) resuming where it stood."""
        out: dict[str, SnmpValue] = {}
        rows = {r: 0 for r in cursor}
        bulk = bulk and t.credential.version is not SnmpVersion.V1
        extra = list(also_next)
        if extra and not bulk:
            out.update(await self._next_each(t, extra, failures))
            extra = []
        for _ in range(max_rows):  # bounded: each round advances every live column
            if not cursor:
                break
            live = list(cursor)
            reps = max_repetitions if bulk else 1
            try:
                answer = await self._request(
                    t, "bulk" if bulk else "next", [*extra, *(cursor[r] for r in live)], reps, len(extra)
                )
            except SnmpError as exc:
                if failures is None or exc.code == SNMP_CONFIG:
                    raise
                out.update(await self._walk_degraded(t, exc, cursor, rows, bulk, max_repetitions,
                                                     max_rows, extra, failures))
                break
            if extra:
                out.update(answer[: len(extra)])
                answer = answer[len(extra) :]
                extra = []
            if not answer:
                break
            width = len(live)
            done: set[str] = set()
            for pos, (name, value) in enumerate(answer):
                root = live[pos % width]
                if root in done:
                    continue
                if value.kind is Kind.END_OF_MIB or not is_under(name, root) or name == cursor[root]:
                    done.add(root)
                    continue
                out[name] = value
                cursor[root] = name
                rows[root] += 1
                if rows[root] >= max_rows:
                    done.add(root)
            if len(answer) < width:
                done.update(live[len(answer):])
            for r in done:
                cursor.pop(r, None)
        return out

    async def _walk_degraded(
        self, t: SnmpTarget, exc: SnmpError, cursor: dict[str, str], rows: dict[str, int], bulk: bool,
        max_repetitions: int, max_rows: int, extra: Sequence[str], failures: list[str],
    ) -> dict[str, SnmpValue]:
        """After a failed walk request: columns alone (at once), then GETNEXT row by row.

        A GETBULK running past a column's end into an object the agent
        cannot encode fails whole; GETNEXT still reads every row up to it.
        """
        out: dict[str, SnmpValue] = {}
        live = list(cursor)
        if len(live) > 1:
            parts = await asyncio.gather(
                self._next_each(t, extra, failures),
                *(self._walk(t, {r: cursor[r]}, max_repetitions, max(1, max_rows - rows[r]), (), failures, bulk)
                  for r in live),
            )
            for part in parts:
                out.update(part)
            return out
        if extra:
            out.update(await self._next_each(t, extra, failures))
        if live and (extra or (bulk and max_repetitions > 1)):
            r = live[0]
            left = max(1, max_rows - rows[r])
            if extra:  # the column alone, as it was asked
                out.update(await self._walk(t, {r: cursor[r]}, max_repetitions, left, (), failures, bulk))
            else:
                out.update(await self._walk(t, {r: cursor[r]}, 1, left, (), failures, False))
        elif live:
            r = live[0]
            failures.append(f"GETNEXT after {cursor[r]} (walk of {r}, {rows[r]} rows read): {exc.message}")
        return out

    async def _next_each(
        self, t: SnmpTarget, oids: Sequence[str], failures: list[str] | None
    ) -> dict[str, SnmpValue]:
        """GETNEXT of ``oids`` together, else (with ``failures``) one by one."""
        if not oids:
            return {}
        try:
            return await self.next(t, oids)
        except SnmpError as exc:
            if failures is None or exc.code == SNMP_CONFIG:
                raise
            if len(oids) == 1:
                failures.append(f"GETNEXT {oids[0]}: {exc.message}")
                return {}
        out: dict[str, SnmpValue] = {}
        for oid in oids:
            out.update(await self._next_each(t, [oid], failures))
        return out
