"""The import layering of docs/architecture.md, enforced by import-linter's contracts in pyproject.toml."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_layering_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


def test_printgate_serve_never_loads_the_lab() -> None:
    """The production wiring (``printgate serve`` and ``Cloud``) runs without the simulated LAN."""
    probe = ("import sys\n"
             "import printgate.cli, printgate.cli.serve, printgate.cli.cloud\n"
             "print(sorted(m for m in sys.modules if m == 'lab' or m.startswith('lab.')))\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, check=True)
    assert result.stdout.strip() == "[]", result.stdout
