"""Static bytes a printer EWS serves: a valid PNG logo, a large PNG, a small ZIP backup."""

from __future__ import annotations

import functools
import io
import struct
import zipfile
import zlib


def png(width: int, height: int, *, noise: bool = False) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = bytearray()
    seed = 12345
    for _y in range(height):
        rows.append(0)
        for _x in range(width):
            if noise:
                seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
                rows += bytes((seed & 0xFF, (seed >> 8) & 0xFF, (seed >> 16) & 0xFF))
            else:
                rows += b"\x1d\x35\x57"
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 1))
        + chunk(b"IEND", b"")
    )


def backup_zip(device_name: str, serial: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("settings.xml", f"<settings device='{device_name}' serial='{serial}'/>")
        zf.writestr("addressbook.csv", "name,email\nAlice,alice@example.com\n")
    return buf.getvalue()


@functools.cache
def logo_png() -> bytes:
    return png(16, 16)


@functools.cache
def large_png() -> bytes:
    return png(1100, 1100, noise=True)  # ~3.6 MB, over the proxy's image limit
