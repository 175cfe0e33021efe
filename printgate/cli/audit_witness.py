"""`printgate audit witness ...`: keygen, and the witness service (``--once`` or a loop)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

app = typer.Typer(help="an audit witness: cosigns the gateway's checkpoints after checking them "
                       "(run it on your own machine)")

EXIT_REFUSED = 1  # the gateway's log is inconsistent: nothing was cosigned
EXIT_CONFIG = 2
EXIT_UNREACHABLE = 3


@app.callback(invoke_without_command=True)
def witness(
    ctx: typer.Context,
    gateway: str | None = typer.Option(None, help="the gateway's portal URL, e.g. https://printgate.example.com"),
    token_file: Path | None = typer.Option(None, help="file holding an auditor API token with the audit:witness "
                                           "scope (or set PRINTGATE_WITNESS_TOKEN)"),
    token: str | None = typer.Option(None, envvar="PRINTGATE_WITNESS_TOKEN", hidden=True),
    gateway_key: Path | None = typer.Option(None, help="the gateway's checkpoint public key (PEM), pinned"),
    gateway_key_handovers: Path | None = typer.Option(
        None, help="directory (or file) of the gateway's key handovers (audit-handover-*.json from its key "
                   "directory, written by `printgate keys rotate audit`): follow a rotation signed by the pinned key"),
    key: Path | None = typer.Option(None, help="this witness's private key (from `audit witness keygen`)"),
    state: Path | None = typer.Option(None, help="this witness's state file (the last checkpoint it cosigned)"),
    once: bool = typer.Option(False, help="one round, then exit: 0 ok, 1 refused, 3 gateway unreachable"),
    interval: float = typer.Option(60.0, min=0.1, help="seconds between rounds (loop mode)"),
) -> None:
    """Check and cosign the gateway's newest checkpoint, once or every INTERVAL seconds."""
    if ctx.invoked_subcommand is not None:
        return
    from audit.checkpoint import CheckpointVerifier
    from audit.cosignature import Cosigner
    from audit.witness.client import GatewayClient, GatewayUnreachable
    from audit.witness.judge import WitnessRefused
    from audit.witness.service import Witness
    from printgate.errors import ConfigError

    missing = [name for name, v in (("--gateway", gateway), ("--gateway-key", gateway_key), ("--key", key),
                                    ("--state", state)) if v is None]
    if missing:
        typer.echo(f"missing {', '.join(missing)} (or run `printgate audit witness keygen`)", err=True)
        raise typer.Exit(EXIT_CONFIG)
    assert gateway is not None and gateway_key is not None and key is not None and state is not None
    try:
        secret = token_file.read_text().strip() if token_file is not None else (token or "")
        if not secret:
            raise ConfigError("give --token-file or set PRINTGATE_WITNESS_TOKEN (an auditor's API token)")
        gateway_verifier = CheckpointVerifier.load(gateway_key)
        cosigner = Cosigner.load(key)
    except (OSError, ConfigError) as exc:
        typer.echo(f"witness: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from exc

    async def run() -> int:
        async with GatewayClient(gateway, secret) as client:
            w = Witness(client, cosigner, gateway_verifier, state, handovers=gateway_key_handovers)
            try:
                if not once:
                    await w.run(interval, report=lambda line: typer.echo(line))
                    return 0
                done = await w.round()
            except WitnessRefused as exc:
                typer.echo(f"REFUSED ({exc.code}): {exc.message}", err=True)
                return EXIT_REFUSED
            except GatewayUnreachable as exc:
                typer.echo(f"gateway unavailable ({exc.code}): {exc.message}", err=True)
                return EXIT_UNREACHABLE
            except ConfigError as exc:
                typer.echo(f"witness: {exc.message}", err=True)
                return EXIT_CONFIG
            typer.echo(done.message)
            return 0

    try:
        code = asyncio.run(run())
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)


@app.command()
def keygen(out: Path = typer.Option(..., help="private key file to write (0600); the public key goes to OUT.pub")) -> None:
    """Create this witness's Ed25519 key pair; give OUT.pub to whoever runs `audit verify --witness-key`."""
    from audit.cosignature import Cosigner

    if out.exists():
        typer.echo(f"{out} exists; refusing to overwrite a witness key", err=True)
        raise typer.Exit(EXIT_CONFIG)
    cosigner = Cosigner.generate()
    cosigner.save(out)
    pub = out.with_name(out.name + ".pub")
    pub.write_text(cosigner.public_key_pem())
    typer.echo(f"witness key {out} (keep secret), public key {pub}, witness id {cosigner.key_id}")
