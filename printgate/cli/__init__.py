"""The ``printgate`` command (composition root: may import every package).

Sub-commands live one module per area; heavy imports happen inside commands.
"""

from __future__ import annotations

import typer

from printgate.cli.admin import app as admin_app
from printgate.cli.agent import app as agent_app
from printgate.cli.audit import app as audit_app
from printgate.cli.db import app as db_app
from printgate.cli.demo import demo
from printgate.cli.lab import app as lab_app
from printgate.cli.policy import app as policy_app
from printgate.cli.serve import serve

app = typer.Typer(no_args_is_help=True, add_completion=False, help="printgate: zero-trust printer web access")
app.add_typer(admin_app, name="admin")
app.add_typer(agent_app, name="agent")
app.add_typer(audit_app, name="audit")
app.add_typer(policy_app, name="policy")
app.add_typer(db_app, name="db")
app.add_typer(lab_app, name="lab")
app.command()(demo)
app.command()(serve)


def main() -> None:
    app()
