"""SNMPv1/v2c messages in BER, by hand: encode requests, decode responses.

The community-string hot path (discovery sweeps, polling) skips pyasn1
entirely: a request is a few bytes of TLV, a response is parsed by a strict,
bounded decoder that raises ``MalformedMessage`` on anything it does not
understand (definite lengths only, no trailing junk, bounded nesting).
Values come out as ``SnmpValue`` like everywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from agent.snmp.values import Kind, SnmpValue

MAX_VALUE_BYTES = 64 * 1024  # a "huge" answer beyond this is cut

GET, GETNEXT, RESPONSE, GETBULK = 0xA0, 0xA1, 0xA2, 0xA5
_OPS = {"get": GET, "next": GETNEXT, "bulk": GETBULK}

_KINDS: dict[int, Kind] = {
    0x02: Kind.INTEGER,
    0x04: Kind.OCTETS,
    0x05: Kind.NULL,
    0x06: Kind.OID,
    0x40: Kind.IPADDRESS,
    0x41: Kind.COUNTER32,
    0x42: Kind.GAUGE32,
    0x43: Kind.TIMETICKS,
    0x44: Kind.OPAQUE,
    0x46: Kind.COUNTER64,
    0x80: Kind.NO_SUCH_OBJECT,
    0x81: Kind.NO_SUCH_INSTANCE,
    0x82: Kind.END_OF_MIB,
}
_UNSIGNED = frozenset({Kind.COUNTER32, Kind.GAUGE32, Kind.TIMETICKS, Kind.COUNTER64})
_EMPTY = frozenset({Kind.NULL, Kind.NO_SUCH_OBJECT, Kind.NO_SUCH_INSTANCE, Kind.END_OF_MIB})


class MalformedMessage(ValueError):
    """Bytes that are not a well-formed SNMPv1/v2c message."""


# --- encoding -------------------------------------------------------------


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(raw),)) + raw


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes((tag,)) + _length(len(body)) + body


def _integer(v: int) -> bytes:
    return _tlv(0x02, v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big", signed=True))


def encode_oid(text: str) -> bytes:
    """Numeric OID text ("1.3.6.1...") to BER contents (no tag/length)."""
    try:
        arcs = [int(p) for p in text.strip(".").split(".")]
    except ValueError as exc:
        raise ValueError(f"not a numeric OID: {text!r}") from exc
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] >= 40) or min(arcs) < 0:
        raise ValueError(f"not a valid OID: {text!r}")
    out = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


def encode_request(
    *, version: int, community: bytes, op: str, request_id: int, oids: list[str],
    max_repetitions: int = 0, non_repeaters: int = 0,
) -> bytes:
    """A GET/GETNEXT/GETBULK message; ``version`` 0 = v1, 1 = v2c.

    For GETBULK the first ``non_repeaters`` OIDs get one GETNEXT each.
    """
    null = b"\x05\x00"
    binds = b"".join(_tlv(0x30, _tlv(0x06, encode_oid(o)) + null) for o in oids)
    tag = _OPS[op]
    second, third = (non_repeaters, max_repetitions) if tag == GETBULK else (0, 0)
    pdu = _tlv(tag, _integer(request_id) + _integer(second) + _integer(third) + _tlv(0x30, binds))
    return _tlv(0x30, _integer(version) + _tlv(0x04, community) + pdu)


# --- decoding -------------------------------------------------------------


def _read(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """One TLV header at ``pos``: (tag, start of contents, end of contents)."""
    if pos + 2 > end:
        raise MalformedMessage("truncated TLV header")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise MalformedMessage("multi-byte tags are not used by SNMP")
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0 or n > 4:
            raise MalformedMessage("indefinite or oversized length")
        if pos + n > end:
            raise MalformedMessage("truncated length")
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    if pos + length > end:
        raise MalformedMessage("length runs past the end of the message")
    return tag, pos, pos + length


def _expect(data: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    got, start, stop = _read(data, pos, end)
    if got != tag:
        raise MalformedMessage(f"expected tag 0x{tag:02x}, got 0x{got:02x}")
    return start, stop


def _int_at(data: bytes, pos: int, end: int) -> tuple[int, int]:
    start, stop = _expect(data, pos, end, 0x02)
    if stop == start or stop - start > 9:
        raise MalformedMessage("bad INTEGER length")
    return int.from_bytes(data[start:stop], "big", signed=True), stop


@lru_cache(maxsize=8192)  # a poll decodes the same column OIDs row after row, printer after printer
def decode_oid(raw: bytes) -> str:
    if not raw or len(raw) > 512 or raw[-1] & 0x80:
        raise MalformedMessage("bad OID encoding")
    if max(raw) < 0x80:  # every arc in one byte: the common case
        arcs = list(raw)
    else:
        arcs = []
        acc = 0
        for b in raw:
            acc = (acc << 7) | (b & 0x7F)
            if not b & 0x80:
                arcs.append(acc)
                acc = 0
    first = arcs[0]
    top = min(first // 40, 2)
    arcs[0] = first - 40 * top
    return f"{top}." + ".".join(map(str, arcs))


def decode_value(tag: int, raw: bytes) -> SnmpValue:
    """A varbind value; unknown tags become OPAQUE bytes, never an exception."""
    kind = _KINDS.get(tag)
    if kind is None:
        return SnmpValue(Kind.OPAQUE, raw[:MAX_VALUE_BYTES])
    if kind in _EMPTY:
        return SnmpValue(kind)
    if kind in (Kind.OCTETS, Kind.IPADDRESS, Kind.OPAQUE):
        return SnmpValue(kind, raw[:MAX_VALUE_BYTES])
    if kind is Kind.OID:
        try:
            return SnmpValue(kind, decode_oid(raw))
        except MalformedMessage:
            return SnmpValue(Kind.OPAQUE, raw[:MAX_VALUE_BYTES])
    if not raw or len(raw) > 9:
        return SnmpValue(Kind.OPAQUE, raw[:MAX_VALUE_BYTES])
    return SnmpValue(kind, int.from_bytes(raw, "big", signed=kind not in _UNSIGNED))


@dataclass(frozen=True, slots=True)
class Response:
    version: int
    community: bytes
    request_id: int
    error_status: int
    error_index: int
    varbinds: list[tuple[str, SnmpValue]]


def decode_response(data: bytes) -> Response:
    """Parse a GetResponse message; raises ``MalformedMessage``."""
    end = len(data)
    start, stop = _expect(data, 0, end, 0x30)
    if stop != end:
        raise MalformedMessage("trailing bytes after the message")
    version, pos = _int_at(data, start, stop)
    c_start, c_stop = _expect(data, pos, stop, 0x04)
    community = data[c_start:c_stop]
    tag, p_start, p_stop = _read(data, c_stop, stop)
    if tag != RESPONSE:
        raise MalformedMessage(f"not a response PDU (tag 0x{tag:02x})")
    request_id, pos = _int_at(data, p_start, p_stop)
    error_status, pos = _int_at(data, pos, p_stop)
    error_index, pos = _int_at(data, pos, p_stop)
    pos, vb_stop = _expect(data, pos, p_stop, 0x30)
    binds: list[tuple[str, SnmpValue]] = []
    while pos < vb_stop:
        b_start, b_stop = _expect(data, pos, vb_stop, 0x30)
        o_start, o_stop = _expect(data, b_start, b_stop, 0x06)
        vtag, v_start, v_stop = _read(data, o_stop, b_stop)
        if v_stop != b_stop:
            raise MalformedMessage("junk after a varbind value")
        binds.append((decode_oid(data[o_start:o_stop]), decode_value(vtag, data[v_start:v_stop])))
        pos = b_stop
    return Response(version, community, request_id, error_status, error_index, binds)
