"""`printgate demo`: everything on one machine (filled in by the walking skeleton)."""

from __future__ import annotations

import typer


def demo() -> None:
    """Run portal, gateway, an agent and a simulated printer LAN on this machine."""
    typer.echo("demo: not wired yet", err=True)
    raise typer.Exit(1)
