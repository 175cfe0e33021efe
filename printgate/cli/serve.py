"""`printgate serve`: the cloud side (portal + gateway) in production."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer

from printgate.cli.until_stopped import until_stopped


def serve(
    config: Annotated[Path | None, typer.Option(help="TOML settings file")] = None,
) -> None:
    """Run the portal and the gateway (relay, proxy, firewall, agent channel) until stopped."""
    from printgate.cli.serve_checks import checked_for_serving
    from printgate.errors import PrintgateError
    from printgate.logs import configure_logging
    from printgate.settings import Settings

    try:  # refuse what cannot run safely, saying what to set (placeholder secret, a port in use)
        settings = checked_for_serving(Settings.load(config))
    except PrintgateError as exc:
        typer.echo(f"printgate serve: {exc.message}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log_level, json=settings.log_json)
    try:
        asyncio.run(_run(settings))
    except KeyboardInterrupt:
        pass
    except PrintgateError as exc:  # e.g. the database did not answer within database_start_wait_seconds
        typer.echo(f"printgate serve: {exc.message}", err=True)
        raise typer.Exit(2) from None


def quiet_cancelled_stream_handlers(loop: asyncio.AbstractEventLoop) -> None:
    """Drop one known false alarm from ``loop``'s exception handler: CPython 3.12.0/3.12.1's
    ``asyncio.start_server`` done-callback asks a *cancelled* connection task for its exception, which
    raises ``CancelledError`` inside the callback, printed as a traceback. The DWA proxy's (mitmproxy)
    connection tasks are cancelled when it stops at the end of a drain. Everything else goes to the
    loop's default handler as before."""
    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if isinstance(context.get("exception"), asyncio.CancelledError) and \
                "StreamReaderProtocol.connection_made" in repr(context.get("handle")):
            return  # the connection was cancelled on purpose (the server stopped): nothing to report
        loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


async def _run(settings: object) -> None:
    from gateway.proxy.serving_mode import skip_message_typechecks
    from printgate.cli.cloud import Cloud
    from printgate.gc_tuning import tune_for_serving
    from printgate.settings import Settings

    assert isinstance(settings, Settings)
    quiet_cancelled_stream_handlers(asyncio.get_running_loop())
    async with Cloud(settings, data_dir=settings.gateway.data_dir) as cloud:
        tune_for_serving()
        skip_message_typechecks()  # what the proxy workers' python -O leaves out, for the in-process proxy
        typer.echo(f"printgate serving: portal {cloud.portal_url}", err=True)
        typer.echo(f"agent enrolment: {cloud.enrol_address}, agent CA {cloud.agent_ca.path} "
                   f"(SHA-256 {cloud.agent_ca.sha256}); agents need a copy of it: "
                   f"printgate agent enroll --url {cloud.enrol_address} --token TOKEN --ca-cert agent-ca.crt; "
                   f"then cloud_grpc = \"{cloud.channel_address}\" in their agent.toml", err=True)
        await until_stopped()
