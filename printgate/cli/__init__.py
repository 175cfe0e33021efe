"""The ``printgate`` command (composition root: may import every package).

Sub-commands live one module per area; heavy imports happen inside commands. ``printgate agent
...`` (what runs on a customer's Raspberry Pi) loads only the agent's commands: the cloud's
(serve, demo, admin, audit, db, policy, lab) pull in SQLAlchemy, FastAPI and mitmproxy, tens of
MB the agent never uses (``tests/unit/agent/test_import_footprint.py``).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

HELP = "printgate: zero-trust printer web access"


def build_app(only: str | None = None) -> typer.Typer:
    """The command tree; ``only="agent"``: just ``printgate agent ...``."""
    import typer

    from printgate.cli.agent import app as agent_app

    root = typer.Typer(no_args_is_help=True, add_completion=False, help=HELP)
    if only == "agent":
        root.add_typer(agent_app, name="agent")
        return root
    from printgate.cli.admin import app as admin_app
    from printgate.cli.audit import app as audit_app
    from printgate.cli.db import app as db_app
    from printgate.cli.demo import demo
    from printgate.cli.fleet import app as fleet_app
    from printgate.cli.keys import app as keys_app
    from printgate.cli.lab import app as lab_app
    from printgate.cli.nodes import app as nodes_app
    from printgate.cli.policy import app as policy_app
    from printgate.cli.serve import serve

    root.add_typer(admin_app, name="admin")
    root.add_typer(agent_app, name="agent")
    root.add_typer(audit_app, name="audit")
    root.add_typer(policy_app, name="policy")
    root.add_typer(db_app, name="db")
    root.add_typer(fleet_app, name="fleet")
    root.add_typer(keys_app, name="keys")
    root.add_typer(lab_app, name="lab")
    root.add_typer(nodes_app, name="nodes")
    root.command()(demo)
    root.command()(serve)
    return root


def __getattr__(name: str) -> Any:
    if name == "app":  # the whole tree, e.g. for typer.testing.CliRunner
        return build_app()
    raise AttributeError(f"module 'printgate.cli' has no attribute {name!r}")


def _plain_help_when_narrow() -> None:
    """On a terminal narrower than 100 columns, Typer's boxed help panels squeeze the option texts
    into a third of the width and truncate them: use click's plain help there (the same text,
    wrapped under each option). ``TYPER_USE_RICH`` set by the user wins; read when Typer loads."""
    import os
    import shutil

    if "TYPER_USE_RICH" not in os.environ and shutil.get_terminal_size((120, 24)).columns < 100:
        os.environ["TYPER_USE_RICH"] = "0"


def main() -> None:
    _plain_help_when_narrow()
    if sys.argv[1:3] == ["agent", "run"] and not {"--help", "--install-completion", "--show-completion"} & set(sys.argv):
        # the deployed agent service: no Typer, pydantic or rich (printgate.cli.agent_run says why)
        from printgate.cli.agent_run import main as agent_run

        agent_run(sys.argv[3:])
    build_app("agent" if sys.argv[1:2] == ["agent"] else None)()
