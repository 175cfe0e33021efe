"""`printgate agent enroll | status | update` (agent channel commands).

Registered on the ``agent`` typer app by ``register(app)``. The agent runtime
(``printgate agent run``) writes ``status.json`` into the data dir; ``status``
shows it with the enrolment facts.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

DEFAULT_DATA_DIR = Path("/var/lib/printgate-agent")


def enroll(
    url: Annotated[str, typer.Option(help="gateway enrolment address host:port")],
    token: Annotated[str, typer.Option(envvar="PRINTGATE_ENROL_TOKEN", help="one-time enrolment token")],
    data_dir: Annotated[Path, typer.Option(help="where the key, certificate and identity go")] = DEFAULT_DATA_DIR,
    ca_cert: Annotated[Path | None, typer.Option(help="PEM CA that signed the gateway certificate")] = None,
    http_proxy: Annotated[str | None, typer.Option(help="http://[user:pass@]proxy:port for CONNECT")] = None,
) -> None:
    """Enrol this host: make a key pair here, get a client certificate from the gateway."""
    from agent.channel.enroll import enroll as do_enroll
    from printgate.errors import PrintgateError

    try:
        identity = asyncio.run(do_enroll(url, token, data_dir,
                                         ca_cert_pem=ca_cert.read_bytes() if ca_cert else None,
                                         http_proxy=http_proxy))
    except PrintgateError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    not_after = datetime.fromtimestamp(identity.cert_not_after_ms / 1000, UTC)
    typer.echo(f"enrolled as {identity.agent_id} (site {identity.site_id}); "
               f"certificate valid until {not_after:%Y-%m-%d %H:%M} UTC; files in {data_dir}")


def status(
    data_dir: Annotated[Path, typer.Option(help="agent data dir")] = DEFAULT_DATA_DIR,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Channel state, last upload, queue length and discovered printers."""
    from agent.channel.enroll import EnrolledIdentity
    from printgate.errors import PrintgateError

    try:
        identity = EnrolledIdentity.load(data_dir)
    except PrintgateError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    runtime_path = data_dir / "status.json"
    runtime = json.loads(runtime_path.read_text()) if runtime_path.exists() else {}
    report = {
        "agent_id": identity.agent_id, "site_id": identity.site_id,
        "certificate_valid_until": datetime.fromtimestamp(identity.cert_not_after_ms / 1000, UTC).isoformat(),
        "relay": identity.relay_address, "mqtt": identity.mqtt_url or None,
        "channel": runtime.get("channel", "agent not running"),
        "last_upload": runtime.get("last_upload"), "queue_length": runtime.get("queue_length"),
        "printers": runtime.get("printers"),
    }
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    for key, value in report.items():
        typer.echo(f"{key:>24}: {'-' if value is None else value}")


def update(
    release_dir: Annotated[Path, typer.Argument(help="directory with wheel, manifest.json, manifest.json.sig")],
    release_key: Annotated[str, typer.Option(help="hex Ed25519 release public key")],
    dry_run: Annotated[bool, typer.Option(help="verify only")] = False,
) -> None:
    """Verify a signed release (signature, newer version, sha256) and install it."""
    from agent.updates import UpdateRejected, verify_update
    from printgate import __version__ as installed

    try:
        manifest, wheel = verify_update(release_dir, release_key=bytes.fromhex(release_key),
                                        installed_version=installed)
    except (UpdateRejected, ValueError) as exc:
        typer.echo(f"update refused: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"verified printgate {manifest.version} (sha256 {manifest.sha256[:16]}…)")
    if dry_run:
        return
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", str(wheel)], check=True)
    typer.echo("installed; restart the agent service")


def register(app: typer.Typer) -> None:
    app.command()(enroll)
    app.command()(status)
    app.command()(update)
