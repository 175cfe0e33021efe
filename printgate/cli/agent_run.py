"""`printgate agent run`: the on-site agent service (systemd runs this).

What runs on a customer's Raspberry Pi has a memory budget (issue 17 item 6: <= 60 MB RSS), so
this path stays light: ``printgate.cli.main`` hands ``agent run`` straight to ``main`` here
(argparse, not Typer: Typer 0.2x loads pydantic for its parameter coercion), the settings come
from ``printgate.agent_settings`` (no pydantic-settings) and rich is made unimportable before
structlog loads (``structlog.dev`` imports rich, its tracebacks and pygments whenever rich is
installed: ~19 MB for a console renderer the agent never uses -- it logs JSON or key-value lines).
``tests/test_agent_imports.py`` keeps it so. The Typer command (``printgate agent run --help`` in
the command tree) calls the same ``serve``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

HELP = "Discover and poll printers, keep the channel to the cloud, open tunnels on command."


def keep_rich_out() -> None:
    """Make ``import rich`` fail in this process, so structlog.dev (imported by structlog) does
    without it. Only for ``agent run``: ``agent scan`` draws its table with rich."""
    if "rich" not in sys.modules:
        sys.modules["rich"] = None  # type: ignore[assignment]  # Python's "not importable" marker


def main(argv: Sequence[str]) -> None:
    """``printgate agent run [--config FILE]`` without Typer; exits like the Typer command."""
    parser = argparse.ArgumentParser(prog="printgate agent run", description=HELP)
    parser.add_argument("--config", type=Path, default=None,
                        help="agent TOML file, e.g. /etc/printgate/agent.toml")
    args = parser.parse_args(list(argv))
    keep_rich_out()
    sys.exit(serve(args.config))


def serve(config: Path | None) -> int:
    """Run the agent until SIGTERM/SIGINT; the process exit code (2: not startable, said why)."""
    from agent.channel.enroll import EnrolledIdentity
    from printgate.agent_settings import load_agent_config
    from printgate.errors import PrintgateError
    from printgate.logs import configure_logging

    try:
        loaded = load_agent_config(config)
    except PrintgateError as exc:
        print(f"printgate agent: {exc.message}", file=sys.stderr)
        return 2
    configure_logging(loaded.log_level, json=loaded.log_json)
    agent = loaded.agent
    try:
        identity = EnrolledIdentity.load(agent.data_dir)
    except PrintgateError as exc:  # its message says what is missing and to run `printgate agent enroll`
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot read this agent's enrolment in {agent.data_dir} ({exc}); run "
              "`printgate agent enroll` first", file=sys.stderr)
        return 2
    if not agent.targets:
        print("no scan targets configured: set [agent] targets = [\"10.0.0.0/24\", ...]", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(agent, identity))
    except KeyboardInterrupt:
        pass
    except PrintgateError as exc:  # e.g. another agent already runs on this data dir
        print(f"printgate agent: {exc.message}", file=sys.stderr)
        return 2
    return 0


async def _serve(settings: object, identity: object) -> None:
    from agent.channel.enroll import EnrolledIdentity
    from agent.service import AgentAssembly
    from printgate.agent_settings import AgentSettings
    from printgate.cli.until_stopped import until_stopped

    assert isinstance(settings, AgentSettings) and isinstance(identity, EnrolledIdentity)
    async with AgentAssembly(settings, identity):
        await until_stopped()
