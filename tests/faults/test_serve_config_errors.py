"""``printgate serve --config deploy/config/printgate.toml`` as shipped, where ``db.internal`` does not
resolve (run in a network namespace the test makes, so no name server answers): one clear line naming
the ``database_url`` setting and exit code 2, not a 665-line ``gaierror`` traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PRINTGATE = str(Path(sys.executable).with_name("printgate"))
SHIPPED = Path(__file__).resolve().parents[2] / "deploy" / "config" / "printgate.toml"


def test_serve_with_an_unresolvable_database_host_says_which_setting(tmp_path: Path) -> None:
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs unshare -n (root)")
    done = subprocess.run(["unshare", "-n", PRINTGATE, "serve", "--config", str(SHIPPED)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    err = done.stderr.strip()
    assert done.returncode == 2, (done.returncode, err[-2000:])
    assert "Traceback" not in err and len(err.splitlines()) == 1, err[-2000:]
    assert "database_url" in err and "db.internal" in err and "does not resolve" in err
