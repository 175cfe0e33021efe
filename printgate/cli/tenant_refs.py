"""Dealers and customers named on the command line: the id, or the name people see.

``--dealer "Demo Print Services"`` and ``--dealer dealer-demo`` name the same dealer; a name
that fits several (or none) is refused with the candidates, so the operator can give the id.
"""

from __future__ import annotations

import typer
from sqlalchemy.ext.asyncio import AsyncSession


def _refuse(message: str, option: str) -> typer.Exit:
    typer.echo(f"error: {option}: {message}", err=True)
    return typer.Exit(2)


async def dealer_id_of(s: AsyncSession, ref: str, *, option: str = "--dealer") -> str:
    """The id of the dealer ``ref`` names (its id, or its name ignoring case); exit 2 otherwise."""
    from printgate.store.tenants import get_dealer, list_dealers

    if await get_dealer(s, ref) is not None:
        return ref
    dealers = await list_dealers(s)
    named = [d for d in dealers if d.name.strip().lower() == ref.strip().lower()]
    if len(named) == 1:
        return named[0].id
    if named:
        raise _refuse(f"{len(named)} dealers are named {ref!r}: give the id, one of "
                      f"{', '.join(sorted(d.id for d in named))}", option)
    known = ", ".join(f"{d.id} ({d.name})" for d in dealers[:10]) or "none yet"
    raise _refuse(f"no dealer with the id or name {ref!r} (dealers: {known}"
                  f"{' ...' if len(dealers) > 10 else ''}; `printgate admin dealers` lists them)", option)


async def customer_id_of(s: AsyncSession, ref: str, *, option: str = "--customer") -> str:
    """The id of the customer ``ref`` names (its id, or its name when one customer has it); exit 2 otherwise."""
    from printgate.store.tenants import customers_named, get_customer

    if await get_customer(s, ref) is not None:
        return ref
    named = await customers_named(s, ref)
    if len(named) == 1:
        return named[0].id
    if named:
        raise _refuse(f"{len(named)} customers are named {ref!r}: give the id, one of "
                      + ", ".join(f"{c.id} (dealer {c.dealer_id})" for c in named), option)
    raise _refuse(f"no customer with the id or name {ref!r} (the dealer's Customers page in the portal "
                  "shows names and ids)", option)
