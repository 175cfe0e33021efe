"""`printgate agent ...` commands (``run``/``status``/``enroll`` are added by their owners)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from printgate.domain import DiscoveryResult

app = typer.Typer(no_args_is_help=True, help="agent commands")


@app.command()
def scan(
    targets: Annotated[list[str], typer.Argument(help="CIDR ranges or addresses, e.g. 10.0.0.0/24 10.0.1.7")],
    port: Annotated[int, typer.Option(help="SNMP UDP port")] = 161,
    community: Annotated[list[str] | None, typer.Option("--community", "-c", help="v1/v2c community (repeatable, tried in order)")] = None,
    v1: Annotated[bool, typer.Option("--v1", help="use SNMPv1 for the communities")] = False,
    v3_user: Annotated[str | None, typer.Option(help="SNMPv3 user (tried after communities)")] = None,
    auth_protocol: Annotated[str, typer.Option(help="SHA, SHA224, SHA256, SHA384, SHA512")] = "SHA256",
    auth_key: Annotated[str, typer.Option(envvar="PRINTGATE_SNMP_AUTH_KEY", help="v3 auth passphrase")] = "",
    priv_protocol: Annotated[str, typer.Option(help="AES128, AES192, AES256 (net-snmp style key extension), AES192C/AES256C (Cisco style) or none")] = "AES128",
    priv_key: Annotated[str, typer.Option(envvar="PRINTGATE_SNMP_PRIV_KEY", help="v3 privacy passphrase")] = "",
    exclude: Annotated[list[str] | None, typer.Option("--exclude", "-x", help="addresses/CIDRs to skip")] = None,
    timeout: Annotated[float, typer.Option(help="per-request timeout, seconds")] = 1.0,
    retries: Annotated[int, typer.Option(help="retries per request")] = 1,
    max_in_flight: Annotated[int, typer.Option(help="hosts probed at once")] = 256,
    rate: Annotated[float, typer.Option(help="max packets per second (0 = unlimited)")] = 500.0,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Discover SNMP printers (RFC 3805) and say why other devices are excluded."""
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from agent.discovery import DiscoveryLimits, discover, expand_targets
    from printgate.cli.scan_table import scan_console, scan_table
    from printgate.domain import DiscoveryStatus, SnmpCredential, numbered
    from printgate.errors import PrintgateError
    from printgate.logs import configure_logging

    configure_logging("warning", json=True)  # logs to stderr; stdout is the result
    creds = [SnmpCredential.v1(c) if v1 else SnmpCredential.v2c(c) for c in (community or ([] if v3_user else ["public"]))]
    if v3_user:
        creds.append(SnmpCredential.v3(
            v3_user, auth_protocol=auth_protocol.upper() if auth_key else None, auth_key=auth_key,
            priv_protocol=None if priv_protocol.lower() == "none" or not priv_key else priv_protocol.upper(),
            priv_key=priv_key,
        ))
    creds = numbered(creds)
    limits = DiscoveryLimits(max_in_flight=max_in_flight, packets_per_second=rate or None,
                             timeout=timeout, retries=retries)
    console = Console(stderr=True)
    try:
        total = len(expand_targets(targets, exclude or ()))
    except PrintgateError as exc:
        console.print(f"[red]{escape(exc.message)}[/red]")
        raise typer.Exit(2) from exc
    counts = dict.fromkeys(DiscoveryStatus, 0)

    def describe() -> str:
        return (f"found {counts[DiscoveryStatus.PRINTER]}  excluded {counts[DiscoveryStatus.EXCLUDED]}  "
                f"unreachable {counts[DiscoveryStatus.UNREACHABLE]}  auth failed {counts[DiscoveryStatus.AUTH_FAILED]}  "
                f"errors {counts[DiscoveryStatus.ERROR]}")

    async def run() -> list[DiscoveryResult]:
        with Progress(TextColumn("[bold]scan"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                      TimeElapsedColumn(), console=console, disable=as_json, transient=False) as progress:
            task = progress.add_task(describe(), total=total)

            def tick(r: DiscoveryResult) -> None:
                counts[r.status] += 1
                progress.update(task, advance=1, description=describe())

            return await discover(targets, port=port, credentials=creds, exclude=exclude or (),
                                  limits=limits, progress=tick)

    try:
        results = asyncio.run(run())
    except PrintgateError as exc:
        console.print(f"[red]{escape(exc.message)}[/red]")
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps([
            {"ip": r.ip, "status": str(r.status), "reason": r.reason, "credential": r.credential,
             "identity": None if r.identity is None else {
                 k: getattr(r.identity, k) for k in
                 ("serial", "mac", "model", "sys_object_id", "vendor", "sys_name", "location")}}
            for r in results], indent=2))
        _hint_if_silent(console, results, port=port, credentials=len(creds))
        return
    scan_console().print(scan_table(results, describe()))
    _hint_if_silent(console, results, port=port, credentials=len(creds))


def _hint_if_silent(console: Any, results: Sequence[DiscoveryResult], *, port: int, credentials: int) -> None:
    """Not one SNMP answer: most often the wrong port or community, so say so."""
    from printgate.domain import DiscoveryStatus

    if results and all(r.status is DiscoveryStatus.UNREACHABLE for r in results):
        console.print(
            f"[yellow]nothing answered SNMP on UDP port {port} with the {credentials} credential(s) tried; "
            "check the port (--port; `printgate lab run` prints the lab's), the community (-c) or v3 "
            "user, and that no firewall drops UDP[/yellow]"
        )


@app.command()
def run(
    config: Annotated[Path | None, typer.Option(help="agent TOML file, e.g. /etc/printgate/agent.toml")] = None,
) -> None:
    """Discover and poll printers, keep the channel to the cloud, open tunnels on command.

    As deployed, ``printgate agent run`` does not come here: ``printgate.cli.main`` hands it to
    ``printgate.cli.agent_run.main`` (no Typer, no pydantic, no rich); both call ``serve``."""
    from printgate.cli.agent_run import serve

    code = serve(config)
    if code:
        raise typer.Exit(code)


from printgate.cli.agent_channel import register as _register_channel_commands  # noqa: E402

_register_channel_commands(app)

from printgate.cli.agent_dead_letters import app as _dead_letters_app  # noqa: E402

app.add_typer(_dead_letters_app, name="dead-letters")
