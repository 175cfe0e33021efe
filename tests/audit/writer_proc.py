"""One concurrent audit writer process (used by test_concurrency)."""

from __future__ import annotations

import asyncio
import sys

from audit.checkpoint import Signer
from audit.log import AuditLog
from printgate.domain import AuditEventIn
from printgate.store.db import Database


async def main(url: str, key: str, writer: int, count: int) -> None:
    async with Database(url) as db:
        log = AuditLog(db, Signer.load(key), checkpoint_every=25)
        i = 0
        while i < count:
            if i % 3 == 0:
                batch = [AuditEventIn(type="test.write", actor=f"w{writer}", details={"w": writer, "i": i + k})
                         for k in range(min(4, count - i))]
                await log.append_many(batch)
                i += len(batch)
            else:
                await log.append(AuditEventIn(type="test.write", actor=f"w{writer}", details={"w": writer, "i": i}))
                i += 1


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
