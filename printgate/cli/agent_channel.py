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

from printgate.domain import event_types
from printgate.proc import pid_alive

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
    from agent.channel.enroll import refuse_if_enrolled
    from printgate.errors import PrintgateError

    try:
        refuse_if_enrolled(data_dir)
        identity = asyncio.run(do_enroll(url, token, data_dir,
                                         ca_cert_pem=ca_cert.read_bytes() if ca_cert else None,
                                         http_proxy=http_proxy))
    except PrintgateError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        if "CERTIFICATE_VERIFY_FAILED" in exc.message or "certificate verify failed" in exc.message.lower():
            typer.echo(_ca_hint(ca_cert), err=True)
        elif "hostname verification" in exc.message.lower():
            host = url.rpartition(":")[0].strip("[]")
            typer.echo(f"hint: the gateway's certificate does not name {host!r}: its operator adds it to "
                       f"[channel] public_names (the load balancer's name agents use) and restarts the "
                       f"gateway nodes", err=True)
        raise typer.Exit(2) from exc
    not_after = datetime.fromtimestamp(identity.cert_not_after_ms / 1000, UTC)
    typer.echo(f"enrolled as {identity.agent_id} (site {identity.site_id}); "
               f"certificate valid until {not_after:%Y-%m-%d %H:%M} UTC; files in {data_dir}")
    typer.echo(f"next: write the agent's settings file (see deploy/config/agent.toml): in [agent], "
               f"data_dir = \"{data_dir}\" and cloud_grpc = \"<gateway host>:<agent channel port>\"; then run\n"
               f"  printgate agent run --config /etc/printgate/agent.toml")


def _ca_hint(ca_cert: Path | None) -> str:
    where = ("the gateway's agent CA is agent-ca/agent-ca.crt in its [gateway] key_dir (the shared key "
             "directory of a scale-out), else in its data_dir; `printgate serve` logs its "
             "path and SHA-256 fingerprint, and the portal's enrolment-token page offers it for download")
    if ca_cert is None:
        return f"hint: this host does not trust the gateway's certificate: pass --ca-cert agent-ca.crt ({where})"
    return (f"hint: {ca_cert} did not sign the gateway's certificate: compare its fingerprint "
            f"(openssl x509 -noout -fingerprint -sha256 -in {ca_cert}) with the gateway's ({where})")


def agent_data_dir(config: Path | None, data_dir: Path | None) -> Path:
    """The agent's data dir for a command on its host: ``--data-dir``; else the [agent] data_dir of
    ``--config`` or of the environment (``PRINTGATE_AGENT__DATA_DIR``, ``PRINTGATE_AGENT``), as
    ``printgate agent run`` reads them; else ``DEFAULT_DATA_DIR`` (the packaged service's)."""
    import os

    from printgate.agent_settings import load_agent_config

    if data_dir is not None:
        return data_dir
    if config is None and not {"PRINTGATE_AGENT__DATA_DIR", "PRINTGATE_AGENT"} & set(os.environ):
        return DEFAULT_DATA_DIR
    return load_agent_config(config).agent.data_dir


def status(
    config: Annotated[Path | None, typer.Option(help="agent TOML file (its [agent] data_dir is used)")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="agent data dir (default: from --config or "
                                                       f"PRINTGATE_AGENT__DATA_DIR, else {DEFAULT_DATA_DIR})")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Channel state, each task's health and last error, queue, oldest queued reading, drops, printers."""
    from agent.channel.enroll import EnrolledIdentity
    from agent.status_file import read_status
    from printgate.errors import PrintgateError

    try:
        data_dir = agent_data_dir(config, data_dir)
    except (PrintgateError, ValueError) as exc:
        typer.echo(f"error: {getattr(exc, 'message', exc)}", err=True)
        raise typer.Exit(2) from exc
    try:
        identity = EnrolledIdentity.load(data_dir)
    except PrintgateError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    runtime = read_status(data_dir / "status.json")
    running = pid_alive(runtime.get("pid"))
    tasks = runtime.get("tasks") or []
    if not running:  # what the status file says is only the last state of an agent that is gone
        tasks = [{**t, "state": f"{t.get('state')} (last known, agent not running)", "healthy": False}
                 for t in tasks if isinstance(t, dict)]
    report = {
        "agent_id": identity.agent_id, "site_id": identity.site_id,
        "certificate_valid_until": datetime.fromtimestamp(identity.cert_not_after_ms / 1000, UTC).isoformat(),
        "relay": identity.relay_address, "mqtt": identity.mqtt_url or None,
        "running": running,
        "status_written_at": runtime.get("written_at"),
        "channel": runtime.get("channel", "agent not running") if running else "agent not running",
        "degraded": runtime.get("degraded"),
        # the gateway refusing the agent (revoked, certificate not accepted): nothing reaches the cloud
        "healthy": running and runtime.get("channel") != "refused" and all(t.get("healthy") for t in tasks)
        and not runtime.get("degraded"),
        "channel_problem": (
            "the gateway refuses this agent (revoked, or its certificate is not accepted): re-enrol with a "
            "new enrolment token (`printgate agent enroll`)") if running and runtime.get("channel") == "refused" else None,
        "last_upload": runtime.get("last_upload"), "queue_length": runtime.get("queue_length"),
        "queued_bytes": runtime.get("queued_bytes"), "oldest_queued": runtime.get("oldest_queued"),
        "dropped": runtime.get("dropped"), "drops": runtime.get("drops"),
        "delivery_problem": runtime.get("delivery_problem"),  # batches set aside, nothing delivered for long
        "tasks": tasks,
        "printers": runtime.get("printers"),
        "tunnels": runtime.get("tunnels"),
    }
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    for key, value in report.items():
        if key in ("tasks", "drops", "printers"):
            continue
        typer.echo(f"{key:>24}: {'-' if value is None else value}")
    _echo_printers(runtime.get("printers"))
    for t in tasks:
        error = f"  last error {t.get('last_error_at')}: {t.get('last_error')}" if t.get("last_error") else ""
        state = t.get("waiting_for") or t.get("state") if t.get("state") == "waiting" else t.get("state")
        typer.echo(f"{'task ' + str(t.get('name')):>24}: {state}, restarts {t.get('restarts')}{error}")
    for d in runtime.get("drops") or []:
        typer.echo(f"{'dropped':>24}: {d['count']} {d['kind']} readings of {d['ip']} ({d['reason']}, "
                   f"{d['first_at']} .. {d['last_at']})")


def _echo_printers(printers: object) -> None:
    """The printers the agent watches, one line each under a heading (address, model, serial)."""
    rows = [p for p in printers if isinstance(p, dict)] if isinstance(printers, list) else []
    typer.echo(f"{'printers':>24}: {len(rows) if rows else 'none found yet'}")
    if not rows:
        return
    ip_w = max(len("address"), *(len(str(p.get("ip") or "-")) for p in rows))
    model_w = max(len("model"), *(len(str(p.get("model") or "-")) for p in rows))
    typer.echo(f"{'':>24}  {'address':<{ip_w}}  {'model':<{model_w}}  serial")
    for p in rows:
        typer.echo(f"{'':>24}  {p.get('ip') or '-'!s:<{ip_w}}  {p.get('model') or '-'!s:<{model_w}}  "
                   f"{p.get('serial') or '-'}")




def update(
    release_dir: Annotated[Path, typer.Argument(help="directory with wheel, manifest.json, manifest.json.sig")],
    release_key: Annotated[str, typer.Option(help="hex Ed25519 release public key")],
    dry_run: Annotated[bool, typer.Option(help="verify only")] = False,
) -> None:
    """Verify a signed release (signature, newer version, sha256) and install it."""
    from agent.errors import UpdateRejected
    from agent.updates import verify_update
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


def authorise_rekey(
    agent_id: Annotated[str, typer.Argument(help="the agent that may renew its certificate for a new key")],
    by: Annotated[str, typer.Option(help="who authorises it (recorded in the audit trail)")],
    minutes: Annotated[int, typer.Option(help="how long the one-time permission lasts")] = 60,
    config: Annotated[Path | None, typer.Option(help="TOML settings file (the cloud's database)")] = None,
) -> None:
    """Let an agent renew once for a NEW key (its key was lost or must be replaced); audited.

    Without this the gateway refuses a renewal whose CSR holds another key than the current
    certificate's. Run on the cloud host (it writes the cloud's database)."""
    from datetime import timedelta

    from audit.log import AuditLog
    from printgate.cli.schema_guard import command_database
    from printgate.domain import AuditEventIn
    from printgate.errors import PrintgateError
    from printgate.store import channel as channel_store

    async def run() -> datetime:
        async with command_database(config) as db:
            async with db.transaction() as s:
                until = await channel_store.grant_rekey(s, agent_id, granted_by=by, ttl=timedelta(minutes=minutes))
            await AuditLog(db, None).append(AuditEventIn(
                type=event_types.AGENT_REKEY_AUTHORISED, actor=by,
                details={"agent_id": agent_id, "until": until.isoformat()}))
            return until

    try:
        until = asyncio.run(run())
    except (PrintgateError, ValueError) as exc:
        typer.echo(f"error: {getattr(exc, 'message', str(exc))}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"agent {agent_id} may renew once for a new key until {until:%Y-%m-%d %H:%M} UTC")


def register(app: typer.Typer) -> None:
    app.command()(enroll)
    app.command("authorise-rekey")(authorise_rekey)
    app.command()(status)
    app.command()(update)
