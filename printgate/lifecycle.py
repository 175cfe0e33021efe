"""The lifecycle every long-lived component shares: ``start()``, ``aclose()``, ``async with``."""

from __future__ import annotations

from typing import Self


class Service:
    """Mixin: ``async with X(...) as x`` runs ``start()`` then ``aclose()``; subclasses define both."""

    async def start(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
