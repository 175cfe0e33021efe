"""`printgate agent dead-letters list | show ID | replay ID | drop ID`: what the cloud did not take.

The agent keeps a readings batch the cloud did not accept, and each reading the cloud refused
one by one, in its queue file's ``dead_letter`` table (``agent.dead_letters``). These commands
run on the agent's host, beside (or without) a running ``printgate agent run``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from printgate.cli.agent_channel import DEFAULT_DATA_DIR

if TYPE_CHECKING:
    from agent.dead_letters import DeadLetters

app = typer.Typer(no_args_is_help=True, help="readings the cloud did not accept: list, show, replay, drop")

ConfigOpt = Annotated[Path | None, typer.Option(help="agent TOML file (its [agent] data_dir is used)")]
DataDirOpt = Annotated[Path | None, typer.Option(help=f"agent data dir (default: from --config or PRINTGATE_AGENT__DATA_DIR, else {DEFAULT_DATA_DIR})")]
BatchArg = Annotated[str, typer.Argument(help="the batch id from `dead-letters list` (a unique prefix is enough)")]
KIND_TEXT = {"batch": "batch not accepted", "reading": "readings refused"}


def _letters(config: Path | None, data_dir: Path | None) -> DeadLetters:
    from agent.dead_letters import DeadLetters
    from printgate.cli.agent_channel import agent_data_dir
    from printgate.errors import PrintgateError

    try:
        data_dir = agent_data_dir(config, data_dir)
    except (PrintgateError, ValueError) as exc:
        _fail(getattr(exc, "message", str(exc)))
    return DeadLetters.of_data_dir(data_dir)


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _guard[T](fn: Callable[..., T], *args: object) -> T:
    from printgate.errors import PrintgateError

    try:
        return fn(*args)
    except PrintgateError as exc:
        _fail(exc.message)


@app.command("list")
def list_(config: ConfigOpt = None, data_dir: DataDirOpt = None,
          as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The batches with readings the cloud did not take: id, kind, readings, when, why."""
    letters = _letters(config, data_dir)
    batches = _guard(letters.batches)
    if as_json:
        typer.echo(json.dumps([b.to_dict() for b in batches], indent=2))
        return
    if not batches:
        typer.echo(f"no dead letters in {letters.path}")
        return
    typer.echo(f"{'batch':<32}  {'kind':<18}  {'readings':>8}  {'set aside (UTC)':<19}  reason")
    for b in batches:
        more = f" (+{len(b.reasons) - 1} other reasons)" if len(b.reasons) > 1 else ""
        typer.echo(f"{b.batch_id:<32}  {KIND_TEXT.get(b.kind, b.kind):<18}  {b.readings:>8}  "
                   f"{b.last_at[:19].replace('T', ' '):<19}  {b.reasons[0] if b.reasons else '-'}{more}")
    typer.echo(f"{sum(b.readings for b in batches)} readings in {len(batches)} batch(es); "
               "`printgate agent dead-letters show ID` lists each reading with its reason")


@app.command()
def show(batch_id: BatchArg, config: ConfigOpt = None, data_dir: DataDirOpt = None,
         as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Each reading of one batch: device address, serial, kinds, when taken, and why it was set aside."""
    letters = _letters(config, data_dir)
    readings = _guard(letters.readings, batch_id)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in readings], indent=2))
        return
    typer.echo(f"batch {_guard(letters.resolve, batch_id)}: {len(readings)} reading(s)")
    for r in readings:
        typer.echo(f"  {r.reading_id}  {r.ip}  serial {r.serial or '-'}  {','.join(r.kinds) or '-'}  "
                   f"taken {r.taken_at}\n    reason: {r.reason}")


@app.command()
def replay(batch_id: BatchArg, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Queue the batch's readings again (after the cloud or the agent was fixed): the running
    agent sends them with its next upload, as a new batch; the cloud stores each reading once."""
    letters = _letters(config, data_dir)
    new_id, queued, skipped = _guard(letters.replay, batch_id)
    extra = f"; {skipped} were queued already and stay as they are" if skipped else ""
    typer.echo(f"queued {queued} reading(s) again as batch {new_id}{extra}; the agent uploads them with its "
               "next flush (`printgate agent status` shows the queue)")


@app.command()
def drop(batch_id: BatchArg, config: ConfigOpt = None, data_dir: DataDirOpt = None,
         yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False) -> None:
    """Delete the batch's readings for good (asks first)."""
    letters = _letters(config, data_dir)
    full = _guard(letters.resolve, batch_id)
    n = len(_guard(letters.readings, full))
    if not yes and not typer.confirm(f"delete {n} reading(s) of batch {full} for good?", default=False):
        typer.echo("nothing deleted")
        raise typer.Exit(1)
    typer.echo(f"deleted {_guard(letters.drop, full)} reading(s) of batch {full}")
