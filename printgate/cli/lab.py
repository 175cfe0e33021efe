"""`printgate lab run`: the simulated printer LAN alone, for an operator trying `serve` + `agent run`.

It starts snmpsim with the real recordings and a web server per lab printer (each at its own
127.0.20.x address), prints where they answer and writes the ``[agent]`` settings an agent needs
to find them (``targets``, ``snmp_port``, ``ews_candidates``): the lab does not listen on the
standard ports 161/443/80, so an agent with the default settings would find nothing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, help="the simulated printer LAN (snmpsim + printer web pages)")


def agent_snippet(*, targets: list[str], snmp_port: int, ews_port: int) -> str:
    """The ``[agent]`` lines (TOML) that point an agent at the lab."""
    quoted = ", ".join(f'"{t}"' for t in targets)
    return (
        "# printgate lab: merge into the [agent] table of your agent.toml\n"
        "[agent]\n"
        f"targets = [{quoted}]\n"
        f"snmp_port = {snmp_port}                 # the lab's snmpsim (community public)\n"
        f'ews_candidates = ["{ews_port}/https", "{ews_port}/http"]   # the lab printers\' web pages\n'
    )


@app.command("run")
def run(
    write: Annotated[Path, typer.Option(help="where to write the agent.toml snippet")] = Path("var/lab/agent-lab.toml"),
    snmp_port: Annotated[int, typer.Option(help="UDP port of the SNMP responder (0: a free one)")] = 0,
    ews_port: Annotated[int, typer.Option(help="TCP port of every printer's web page (0: a free one)")] = 0,
) -> None:
    """Run the simulated printer LAN until Ctrl-C; print its addresses and ports."""
    try:
        asyncio.run(_run(write, snmp_port=snmp_port or None, ews_port=ews_port))
    except KeyboardInterrupt:
        pass
    typer.echo("lab stopped")


async def _run(write: Path, *, snmp_port: int | None, ews_port: int) -> None:
    from lab.catalog import LAB_DEVICES, PRINTERS
    from lab.ews.server import EwsLab
    from lab.ports import free_tcp_port
    from lab.snmp import SnmpLab
    from printgate.cli.until_stopped import until_stopped

    ews_port = ews_port or free_tcp_port()
    workdir = write.parent / "snmpsim"
    workdir.mkdir(parents=True, exist_ok=True)
    async with SnmpLab(port=snmp_port, workdir=workdir) as snmp, EwsLab(PRINTERS, port=ews_port):
        targets = [d.ip for d in LAB_DEVICES]
        snippet = agent_snippet(targets=targets, snmp_port=snmp.port, ews_port=ews_port)
        await asyncio.to_thread(write.write_text, snippet)
        typer.echo(f"SNMP:      udp port {snmp.port} on every lab address, community 'public'")
        typer.echo(f"Web pages: tcp port {ews_port} on every printer's address")
        for d in LAB_DEVICES:
            web = f"{'https' if d.https else 'http'}://{d.ip}:{ews_port}/" if d.printer else "(not a printer)"
            typer.echo(f"  {d.ip:<14} {d.name:<24} {web}")
        typer.echo(f"Agent settings written to {write} (targets, snmp_port, ews_candidates):")
        typer.echo(snippet)
        typer.echo("Press Ctrl-C to stop.", err=False)
        await until_stopped()
