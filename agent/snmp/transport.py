"""How to ask: SNMP GET / table walks over UDP (v1/v2c by hand, v3 with pysnmp 7).

One ``SnmpClient`` (one socket for communities, one pysnmp engine for v3)
serves every device. It bounds the
number of requests in flight and the packet rate, applies a per-request
timeout and retries, and converts answers into ``SnmpValue`` at once, so
nothing above this module sees a pysnmp type.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pysnmp.hlapi.v3arch import asyncio as hl
from pysnmp.proto import errind
from pysnmp.smi import builder, view

from agent.snmp.ber import MAX_VALUE_BYTES
from agent.snmp.community_udp import CommunityRequester, Unreachable
from agent.snmp.oids import is_under
from agent.snmp.values import Kind, SnmpValue
from printgate.domain import SnmpCredential, SnmpVersion
from printgate.errors import SnmpError

_TAGS: dict[tuple[int, int, int], Kind] = {
    (0, 0, 2): Kind.INTEGER,
    (0, 0, 4): Kind.OCTETS,
    (0, 0, 6): Kind.OID,
    (0, 0, 5): Kind.NULL,
    (64, 0, 0): Kind.IPADDRESS,
    (64, 0, 1): Kind.COUNTER32,
    (64, 0, 2): Kind.GAUGE32,
    (64, 0, 3): Kind.TIMETICKS,
    (64, 0, 4): Kind.OPAQUE,
    (64, 0, 6): Kind.COUNTER64,
    (128, 0, 0): Kind.NO_SUCH_OBJECT,
    (128, 0, 1): Kind.NO_SUCH_INSTANCE,
    (128, 0, 2): Kind.END_OF_MIB,
}

_AUTH = {
    None: hl.USM_AUTH_NONE,
    "MD5": hl.USM_AUTH_HMAC96_MD5,
    "SHA": hl.USM_AUTH_HMAC96_SHA,
    "SHA1": hl.USM_AUTH_HMAC96_SHA,
    "SHA224": hl.USM_AUTH_HMAC128_SHA224,
    "SHA256": hl.USM_AUTH_HMAC192_SHA256,
    "SHA384": hl.USM_AUTH_HMAC256_SHA384,
    "SHA512": hl.USM_AUTH_HMAC384_SHA512,
}
# AES-192/256 need a key longer than SHA-1's: net-snmp (and most agents) extend
# it per draft-blumenthal-aes-usm; Cisco-style agents per draft-reeder ("...C")
_PRIV = {
    None: hl.USM_PRIV_NONE,
    "AES": hl.USM_PRIV_CFB128_AES,
    "AES128": hl.USM_PRIV_CFB128_AES,
    "AES192": hl.USM_PRIV_CFB192_AES_BLUMENTHAL,
    "AES256": hl.USM_PRIV_CFB256_AES_BLUMENTHAL,
    "AES192C": hl.USM_PRIV_CFB192_AES,
    "AES256C": hl.USM_PRIV_CFB256_AES,
}
_ERROR_STATUS = {
    1: "tooBig", 2: "noSuchName", 3: "badValue", 4: "readOnly", 5: "genErr", 6: "noAccess",
    7: "wrongType", 8: "wrongLength", 9: "wrongEncoding", 10: "wrongValue", 11: "noCreation",
    12: "inconsistentValue", 13: "resourceUnavailable", 14: "commitFailed", 15: "undoFailed",
    16: "authorizationError", 17: "notWritable", 18: "inconsistentName",
}
_AUTH_FAILURES = (
    errind.WrongDigest, errind.UnknownUserName, errind.UnsupportedSecurityLevel,
    errind.AuthenticationFailure, errind.DecryptionError, errind.UnknownSecurityName,
    errind.UnsupportedAuthProtocol, errind.UnsupportedPrivProtocol,
)


def from_pysnmp(value: Any) -> SnmpValue:
    """Convert one pysnmp/pyasn1 value; never raises (unknown -> OPAQUE bytes)."""
    try:
        tag = value.tagSet[0] if value.tagSet else None
        key = (tag.tagClass, tag.tagFormat, tag.tagId) if tag is not None else None
        kind = _TAGS.get(key) if key is not None else None
        if kind is None:
            return SnmpValue(Kind.OPAQUE, bytes(value.asOctets())[:MAX_VALUE_BYTES] if hasattr(value, "asOctets") else b"")
        if kind in (Kind.NULL, Kind.NO_SUCH_OBJECT, Kind.NO_SUCH_INSTANCE, Kind.END_OF_MIB):
            return SnmpValue(kind)
        if not value.isValue:
            return SnmpValue(Kind.NULL)
        if kind in (Kind.OCTETS, Kind.IPADDRESS, Kind.OPAQUE):
            return SnmpValue(kind, bytes(value.asOctets())[:MAX_VALUE_BYTES])
        if kind is Kind.OID:
            return SnmpValue(kind, ".".join(str(x) for x in tuple(value)))
        return SnmpValue(kind, int(value))
    except Exception:  # malformed values must never crash the agent
        return SnmpValue(Kind.OPAQUE, b"")


def oid_text(name: Any) -> str | None:
    try:
        return ".".join(str(int(x)) for x in tuple(name))
    except Exception:  # a malformed name is dropped, never fatal
        return None


_NULL = hl.Null("")


class _NoMibCompiler:
    """We only use numeric OIDs: never build pysmi's parser (~3 s of CPU)."""

    def compile(self, *names: str, **options: Any) -> dict[str, str]:
        return {}


def _numeric_mib_view() -> Any:
    mib_builder = builder.MibBuilder()
    mib_builder.set_mib_compiler(_NoMibCompiler(), "/nonexistent/printgate-no-mibs")
    return view.MibViewController(mib_builder)


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
        # v3 needs pysnmp's full engine (USM, engine-id discovery)
        self._community = CommunityRequester()
        self._engine: Any = None
        self._sem = asyncio.Semaphore(max_in_flight)
        self._rate = _RateLimit(packets_per_second)
        self._targets: dict[tuple[str, int, int], Any] = {}
        self._auth: dict[SnmpCredential, Any] = {}
        self.requests = 0

    async def __aenter__(self) -> SnmpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._community.close()
        if self._engine is not None:
            self._engine.close_dispatcher()

    def _v3_engine(self) -> Any:
        if self._engine is None:
            self._engine = hl.SnmpEngine()
            self._engine.cache["mibViewController"] = _numeric_mib_view()
        return self._engine

    def _auth_data(self, cred: SnmpCredential) -> Any:
        data = self._auth.get(cred)
        if data is None:
            if cred.version is SnmpVersion.V3:
                if cred.auth_protocol not in _AUTH or cred.priv_protocol not in _PRIV:
                    raise SnmpError(
                        f"unsupported SNMPv3 protocols auth={cred.auth_protocol} priv={cred.priv_protocol}; "
                        f"use auth one of {sorted(k for k in _AUTH if k)} and priv one of {sorted(k for k in _PRIV if k)}",
                        code="snmp_config",
                    )
                data = hl.UsmUserData(
                    cred.user,
                    authKey=cred.auth_key or None,
                    privKey=cred.priv_key or None,
                    authProtocol=_AUTH[cred.auth_protocol],
                    privProtocol=_PRIV[cred.priv_protocol],
                )
            else:
                raise SnmpError(f"{cred.label} is not an SNMPv3 credential", code="snmp_config")
            self._auth[cred] = data
        return data

    def _retries(self, t: SnmpTarget) -> int:
        return self.retries if t.retries is None else t.retries

    async def _transport(self, t: SnmpTarget) -> Any:
        key = (t.ip, t.port, self._retries(t))
        tr = self._targets.get(key)
        if tr is None:
            # IP literals only: skip pysnmp's getaddrinfo round trip through a thread
            cls = hl.UdpTransportTarget
            tr = cls.__new__(cls)
            tr.transport_address = (t.ip, t.port)
            tr.__init__(timeout=self.timeout, retries=self._retries(t))
            self._targets[key] = tr
        return tr

    def _fail(self, t: SnmpTarget, indication: Any) -> SnmpError:
        where = f"{t.ip}:{t.port} ({t.credential.label})"
        if isinstance(indication, errind.RequestTimedOut):
            return SnmpError(
                f"no SNMP answer from {where} within {self.timeout}s x{self._retries(t) + 1}: "
                "host unreachable, no SNMP agent, wrong community, or wrong v3 privacy key",
                code="snmp_timeout",
            )
        if isinstance(indication, _AUTH_FAILURES):
            return SnmpError(
                f"SNMPv3 authentication refused by {where}: {indication}; check user and keys",
                code="snmp_auth_failed",
            )
        return SnmpError(f"SNMP request to {where} failed: {indication}", code="snmp_failed")

    async def _request(
        self, t: SnmpTarget, op: str, oids: Sequence[str], max_rep: int = 0, non_rep: int = 0
    ) -> list[tuple[str, SnmpValue]]:
        if t.credential.version is SnmpVersion.V3:
            status, index, result = await self._request_v3(t, op, oids, max_rep, non_rep)
        else:
            status, index, result = await self._request_community(t, op, oids, max_rep, non_rep)
        if status and status != 2:  # noSuchName (v1) is "absent", not a failure
            name = _ERROR_STATUS.get(status, str(status))
            if status in (16, 6):  # authorizationError, noAccess
                raise SnmpError(
                    f"{t.ip}:{t.port} refused access ({name}) for {t.credential.label}",
                    code="snmp_auth_failed",
                )
            raise SnmpError(f"{t.ip}:{t.port} answered error {name} at #{index}", code="snmp_failed")
        if status:
            return [(o, SnmpValue(Kind.NO_SUCH_OBJECT)) for o in oids] if op == "get" else []
        return result

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
            except TimeoutError:
                raise self._fail(t, errind.requestTimedOut) from None
            except Unreachable as exc:
                raise SnmpError(
                    f"no SNMP agent at {t.ip}:{t.port}: the network answered {exc.strerror} "
                    "(port closed or host down)",
                    code="snmp_unreachable",
                ) from None
        return answer.error_status, answer.error_index, answer.varbinds

    async def _request_v3(
        self, t: SnmpTarget, op: str, oids: Sequence[str], max_rep: int, non_rep: int
    ) -> tuple[int, int, list[tuple[str, SnmpValue]]]:
        binds = [hl.ObjectType(hl.ObjectIdentity(o), _NULL) for o in oids]
        auth = self._auth_data(t.credential)
        async with self._sem:
            await self._rate.take()
            tr = await self._transport(t)
            self.requests += 1
            eng, ctx = self._v3_engine(), hl.ContextData()
            if op == "get":
                ind, status, index, out = await hl.get_cmd(eng, auth, tr, ctx, *binds, lookupMib=False)
            elif op == "next":
                ind, status, index, out = await hl.next_cmd(eng, auth, tr, ctx, *binds, lookupMib=False)
            else:
                ind, status, index, out = await hl.bulk_cmd(
                    eng, auth, tr, ctx, non_rep, max_rep, *binds, lookupMib=False
                )
        if ind:
            raise self._fail(t, ind)
        result: list[tuple[str, SnmpValue]] = []
        for vb in out:
            name = oid_text(vb[0])
            if name is not None:
                result.append((name, from_pysnmp(vb[1])))
        return int(status or 0), int(index or 0), result

    async def get(self, t: SnmpTarget, oids: Iterable[str], *, chunk: int = 24) -> dict[str, SnmpValue]:
        """GET scalars (split in chunks); missing ones come back absent."""
        wanted = list(oids)
        out: dict[str, SnmpValue] = {}
        for i in range(0, len(wanted), chunk):
            for name, value in await self._request(t, "get", wanted[i : i + chunk]):
                out[name] = value
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
    ) -> dict[str, SnmpValue]:
        """Walk several table columns at once (GETBULK; GETNEXT for v1), bounded.

        ``also_next``: OIDs whose single GETNEXT rides along the first GETBULK
        as non-repeaters (one round trip saved); their answers are included.
        """
        cursor = {r: r for r in dict.fromkeys(roots)}
        out: dict[str, SnmpValue] = {}
        rows = {r: 0 for r in cursor}
        bulk = t.credential.version is not SnmpVersion.V1
        extra = list(also_next)
        if extra and not bulk:
            out.update(await self.next(t, extra))
            extra = []
        for _ in range(max_rows):  # bounded: each round advances every live column
            if not cursor:
                break
            live = list(cursor)
            reps = max_repetitions if bulk else 1
            answer = await self._request(
                t, "bulk" if bulk else "next", [*extra, *(cursor[r] for r in live)], reps, len(extra)
            )
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
