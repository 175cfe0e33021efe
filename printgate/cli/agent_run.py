"""`printgate agent run`: the on-site agent service (systemd runs this)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from printgate.cli.until_stopped import until_stopped


def run(
    config: Annotated[Path | None, typer.Option(help="agent TOML file, e.g. /etc/printgate/agent.toml")] = None,
) -> None:
    """Discover and poll printers, keep the channel to the cloud, open tunnels on command."""
    from agent.channel.enroll import EnrolledIdentity
    from printgate.errors import PrintgateError
    from printgate.logs import configure_logging
    from printgate.settings import Settings

    settings = Settings.load(config)
    configure_logging(settings.log_level, json=settings.log_json)
    agent = settings.agent
    try:
        identity = EnrolledIdentity.load(agent.data_dir)
    except (OSError, PrintgateError) as exc:
        typer.echo(f"this agent is not enrolled ({exc}); run `printgate agent enroll` first", err=True)
        raise typer.Exit(2) from None
    if not agent.targets:
        typer.echo("no scan targets configured: set [agent] targets = [\"10.0.0.0/24\", ...]", err=True)
        raise typer.Exit(2)
    try:
        asyncio.run(_serve(settings, identity))
    except KeyboardInterrupt:
        pass
    except PrintgateError as exc:  # e.g. another agent already runs on this data dir
        typer.echo(f"printgate agent: {exc.message}", err=True)
        raise typer.Exit(2) from None


async def _serve(settings: object, identity: object) -> None:
    from agent.channel.enroll import EnrolledIdentity
    from agent.service import AgentAssembly
    from printgate.settings import Settings

    assert isinstance(settings, Settings) and isinstance(identity, EnrolledIdentity)
    async with AgentAssembly(settings.agent, identity):
        await until_stopped()
