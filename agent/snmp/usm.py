"""SNMPv3 (USM) requests through pysnmp 7's engine: imported only when a v3 credential is used.

pysnmp costs ~23 MB of memory and ~0.3 s to import; an agent with only
communities never loads it. Answers come back as ``SnmpValue`` at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pysnmp.hlapi.v3arch import asyncio as hl
from pysnmp.proto import errind
from pysnmp.smi import builder, view

from agent.errors import SNMP_CONFIG
from agent.snmp.ber import MAX_VALUE_BYTES
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

AUTH_PROTOCOLS = {
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
PRIV_PROTOCOLS = {
    None: hl.USM_PRIV_NONE,
    "AES": hl.USM_PRIV_CFB128_AES,
    "AES128": hl.USM_PRIV_CFB128_AES,
    "AES192": hl.USM_PRIV_CFB192_AES_BLUMENTHAL,
    "AES256": hl.USM_PRIV_CFB256_AES_BLUMENTHAL,
    "AES192C": hl.USM_PRIV_CFB192_AES,
    "AES256C": hl.USM_PRIV_CFB256_AES,
}
_AUTH_FAILURES = (
    errind.WrongDigest, errind.UnknownUserName, errind.UnsupportedSecurityLevel,
    errind.AuthenticationFailure, errind.DecryptionError, errind.UnknownSecurityName,
    errind.UnsupportedAuthProtocol, errind.UnsupportedPrivProtocol,
)
_NULL = hl.Null("")


class UsmRefused(Exception):
    """The agent answered with a USM report: unknown user, wrong digest, ..."""


class UsmFailed(Exception):
    """Any other engine-level failure."""


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


class _NoMibCompiler:
    """We only use numeric OIDs: never build pysmi's parser (~3 s of CPU)."""

    def compile(self, *names: str, **options: Any) -> dict[str, str]:
        return {}


def _numeric_mib_view() -> Any:
    mib_builder = builder.MibBuilder()
    mib_builder.set_mib_compiler(_NoMibCompiler(), "/nonexistent/printgate-no-mibs")
    return view.MibViewController(mib_builder)


class UsmRequester:
    """One pysnmp engine for every v3 device (engine-id discovery, USM keys cached)."""

    def __init__(self) -> None:
        self._engine: Any = None
        self._targets: dict[tuple[str, int, float, int], Any] = {}
        self._auth: dict[SnmpCredential, Any] = {}

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close_dispatcher()
            self._engine = None

    def _v3_engine(self) -> Any:
        if self._engine is None:
            self._engine = hl.SnmpEngine()
            self._engine.cache["mibViewController"] = _numeric_mib_view()
        return self._engine

    def _auth_data(self, cred: SnmpCredential) -> Any:
        data = self._auth.get(cred)
        if data is None:
            if cred.version is not SnmpVersion.V3:
                raise SnmpError(f"{cred.label} is not an SNMPv3 credential", code=SNMP_CONFIG)
            if cred.auth_protocol not in AUTH_PROTOCOLS or cred.priv_protocol not in PRIV_PROTOCOLS:
                raise SnmpError(
                    f"unsupported SNMPv3 protocols auth={cred.auth_protocol} priv={cred.priv_protocol}; "
                    f"use auth one of {sorted(k for k in AUTH_PROTOCOLS if k)} "
                    f"and priv one of {sorted(k for k in PRIV_PROTOCOLS if k)}",
                    code=SNMP_CONFIG,
                )
            data = hl.UsmUserData(
                cred.user,
                authKey=cred.auth_key or None,
                privKey=cred.priv_key or None,
                authProtocol=AUTH_PROTOCOLS[cred.auth_protocol],
                privProtocol=PRIV_PROTOCOLS[cred.priv_protocol],
            )
            self._auth[cred] = data
        return data

    def _transport(self, ip: str, port: int, timeout: float, retries: int) -> Any:
        key = (ip, port, timeout, retries)
        tr = self._targets.get(key)
        if tr is None:
            # IP literals only: skip pysnmp's getaddrinfo round trip through a thread
            cls = hl.UdpTransportTarget
            tr = cls.__new__(cls)
            tr.transport_address = (ip, port)
            tr.__init__(timeout=timeout, retries=retries)
            self._targets[key] = tr
        return tr

    def check(self, cred: SnmpCredential) -> None:
        """Raise ``SnmpError`` (snmp_config) for protocols we cannot speak."""
        self._auth_data(cred)

    async def request(
        self, ip: str, port: int, cred: SnmpCredential, op: str, oids: Sequence[str], *,
        max_repetitions: int, non_repeaters: int, timeout: float, retries: int,
    ) -> tuple[int, int, list[tuple[str, SnmpValue]]]:
        """(error status, error index, varbinds); raises TimeoutError, UsmRefused, UsmFailed."""
        auth = self._auth_data(cred)
        binds = [hl.ObjectType(hl.ObjectIdentity(o), _NULL) for o in oids]
        tr = self._transport(ip, port, timeout, retries)
        eng, ctx = self._v3_engine(), hl.ContextData()
        if op == "get":
            ind, status, index, out = await hl.get_cmd(eng, auth, tr, ctx, *binds, lookupMib=False)
        elif op == "next":
            ind, status, index, out = await hl.next_cmd(eng, auth, tr, ctx, *binds, lookupMib=False)
        else:
            ind, status, index, out = await hl.bulk_cmd(
                eng, auth, tr, ctx, non_repeaters, max_repetitions, *binds, lookupMib=False
            )
        if ind:
            if isinstance(ind, errind.RequestTimedOut):
                raise TimeoutError(str(ind))
            if isinstance(ind, _AUTH_FAILURES):
                raise UsmRefused(str(ind))
            raise UsmFailed(str(ind))
        result: list[tuple[str, SnmpValue]] = []
        for vb in out:
            name = oid_text(vb[0])
            if name is not None:
                result.append((name, from_pysnmp(vb[1])))
        return int(status or 0), int(index or 0), result
