"""`printgate demo`: portal, gateway, an agent and a simulated printer LAN on this machine."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from printgate.cli.until_stopped import until_stopped

if TYPE_CHECKING:
    from printgate.cli.demo_system import DemoSystem


def demo(
    data_dir: Annotated[Path, typer.Option(help="where the demo keeps its database and keys")] = Path("var/demo"),
    keep: Annotated[bool, typer.Option(help="keep the previous demo's data instead of starting afresh")] = False,
    free_ports: Annotated[bool, typer.Option(help="pick free ports instead of the defaults (8400 portal, 8480 proxy, ...)")] = False,
    https: Annotated[bool, typer.Option(help="serve session hosts over TLS from a demo CA (printed, with how to trust it)")] = False,
    mqtt: Annotated[bool, typer.Option(help="also run Mosquitto (deploy/mosquitto config) as the agent's second command channel")] = False,
) -> None:
    """Run portal, gateway, an agent and a simulated printer LAN on this machine (Ctrl-C stops)."""
    if data_dir.exists() and not keep:
        ca = data_dir / "gateway" / "dwa-ca"
        kept_ca = _read_dir(ca) if https else {}
        shutil.rmtree(data_dir)
        _write_dir(ca, kept_ca)  # a browser that trusts the demo CA keeps trusting it
    try:
        asyncio.run(_run(data_dir, free_ports=free_ports, https=https, mqtt=mqtt))
    except KeyboardInterrupt:
        typer.echo("\ndemo stopped")


def _read_dir(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in path.iterdir() if p.is_file()} if path.is_dir() else {}


def _write_dir(path: Path, files: dict[str, bytes]) -> None:
    if not files:
        return
    path.mkdir(parents=True, mode=0o700)
    for name, data in files.items():
        (path / name).write_bytes(data)
        (path / name).chmod(0o600)


async def _run(data_dir: Path, *, free_ports: bool, https: bool, mqtt: bool = False) -> None:
    import segno
    from rich.console import Console

    from lab.ews.app import PASSWORD as EWS_PASSWORD
    from lab.ews.app import USERNAME as EWS_USERNAME
    from printgate.cli.demo_system import DemoSystem
    from printgate.errors import PrintgateError
    from printgate.settings import Settings

    console = Console(stderr=False)
    overrides = {"proxy_scheme": "https"} if https else {}
    env = Settings.load()  # PRINTGATE_DATABASE_URL: the demo's data in that database instead of SQLite
    database_url = env.database_url if "database_url" in env.model_fields_set else None
    system = DemoSystem(data_dir, log_level="warning", fixed_ports=not free_ports, gateway_overrides=overrides,
                        database_url=database_url,
                        mqtt=mqtt)
    with console.status("starting the simulated printer LAN, the cloud and an agent ..."):
        try:
            await system.start()
        except OSError as exc:
            console.print(f"[red]cannot start the demo: {exc}[/red]\n"
                          "Another program may use the default ports: try [bold]printgate demo --free-ports[/bold].")
            raise typer.Exit(1) from None
        except PrintgateError as exc:
            console.print(f"[red]cannot start the demo: {exc.message}[/red]")
            raise typer.Exit(1) from None
    try:
        with console.status("the agent is discovering the lab printers over SNMP ..."):
            count = await system.wait_for_devices(minimum=len(_printers()), timeout=120)
        await system.cloud.audit.checkpoint()  # a tenant's `audit export` works at once (not after a minute)
        user = system.demo_user
        uri = f"otpauth://totp/printgate:{user.email}?secret={user.totp_secret}&issuer=printgate"
        console.rule("[bold]printgate demo")
        console.print(f"Portal:        [bold]{system.portal_url}/login[/bold]")
        console.print(f"Database:      {_without_password(system.settings.database_url)}", highlight=False)
        config_file = write_demo_config(system, data_dir / "printgate.toml")
        console.print(f"CLI:           printgate <command> --config {config_file}  (every command reaches this "
                      "demo with it, the agent's too: e.g. admin dealers, audit export, agent status)",
                      highlight=False, soft_wrap=True)
        console.print("Accounts (password, then the TOTP code: "
                      f"{_python()} -c \"import pyotp; print(pyotp.TOTP('<TOTP secret>').now())\"; "
                      "the QR code below is the technician's):", soft_wrap=True)
        for label, login in system.accounts.items():
            console.print(f"  {label:<18} {login.email:<32} password {login.password}   "
                          f"TOTP secret {login.totp_secret}", highlight=False, soft_wrap=True)
        console.print(f"Printers:      {count} discovered by the agent on the lab LAN 127.0.20.0/24")
        console.print(f"Printer EWS:   the lab printers' own admin login: user {EWS_USERNAME!r}, "
                      f"password {EWS_PASSWORD!r} (lab only)", highlight=False, soft_wrap=True)
        if system.mosquitto is not None:
            console.print(f"MQTT broker:   {system.mosquitto.url}  (commands also reach the agent through it; "
                          f"config {system.mosquitto.directory / 'mosquitto.conf'})", soft_wrap=True)
        scheme = "https" if https else "http"
        console.print(f"Session hosts: {scheme}://s-<id>.dwa.localhost:{system.cloud.proxy.port}/ "
                      "(resolves to 127.0.0.1 in browsers)", soft_wrap=True)
        if system.cloud.dwa_ca_cert is not None:
            from gateway.proxy.public_tls import trust_instructions

            console.print(f"Session CA:    {system.cloud.dwa_ca_cert}  (trust it once; kept across demo runs)",
                          soft_wrap=True)
            for line in trust_instructions(system.cloud.dwa_ca_cert):
                console.print(f"               {line}", highlight=False, soft_wrap=True)
        segno.make(uri, error="m").terminal(compact=True)
        console.print("Press Ctrl-C to stop.")
        await until_stopped()
        console.print("stopping the demo ...")
    finally:
        await system.aclose()
    console.print("demo stopped")


def _python() -> str:
    """This interpreter as the operator types it (``.venv/bin/python`` from the checkout):
    the system Python has no pyotp."""
    import sys

    here = Path(sys.executable)
    try:
        return str(here.relative_to(Path.cwd()))
    except ValueError:
        return str(here)


def demo_config(system: DemoSystem) -> str:
    """The demo's settings as a TOML file for the CLI: its database, ports, gateway and agent data
    dirs (absolute paths), so ``printgate <command> --config <file>`` reaches the running demo."""
    settings = system.settings
    portal, gw = settings.portal, settings.gateway

    def q(value: object) -> str:
        return json.dumps(str(value))  # a JSON string is a TOML basic string

    lines = ["# written by `printgate demo` for the CLI: printgate <command> --config <this file>",
             "# (rewritten at each start; the portal's secret key is not in it)",
             f"database_url = {q(settings.database_url)}", "",
             "[portal]", f"port = {portal.port}", f"public_url = {q(portal.public_url)}", "",
             "[gateway]", f"data_dir = {q(gw.data_dir.resolve())}", f"relay_port = {gw.relay_port}",
             f"proxy_port = {gw.proxy_port}", f"grpc_port = {gw.grpc_port}", f"enrol_port = {gw.enrol_port}",
             f"proxy_scheme = {q(gw.proxy_scheme)}", "",
             "[integrations]", "allow_private_endpoints = true", "",
             "[security_alerts]", "allow_private_webhooks = true", ""]
    if getattr(system, "agent", None) is not None:
        agent = system.agent_settings(system.base_dir / "agent")
        lines += ["[agent]", f"data_dir = {q(agent.data_dir.resolve())}", f"cloud_grpc = {q(agent.cloud_grpc)}", ""]
    return "\n".join(lines)


def write_demo_config(system: DemoSystem, path: Path) -> Path:
    """``demo_config`` written to ``path`` (0600: it may hold a database password)."""
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(demo_config(system))
    return path


def _without_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _printers() -> tuple[object, ...]:
    from lab.catalog import PRINTERS

    return PRINTERS
