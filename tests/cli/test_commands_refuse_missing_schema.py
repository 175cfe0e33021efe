"""Commands that open the database refuse one without printgate's schema (no traceback, no stray file)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from printgate.testing.database import create_pg_database, drop_pg_database

PRINTGATE = str(Path(sys.executable).with_name("printgate"))

COMMANDS = [
    ["admin", "add-user", "tech@example.com", "--role", "technician", "--dealer", "acme"],
    ["admin", "dealers"],
    ["admin", "agents"],
    ["policy", "explain", "--user", "tech@example.com", "--device", "dev-1"],
    ["audit", "export", "--out", "export.jsonl"],
]


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PRINTGATE_")}
    return subprocess.run([PRINTGATE, *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={**clean, "COLUMNS": "200", **(env or {})})


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_command_without_config_refuses_and_creates_no_database(tmp_path: Path, args: list[str]) -> None:
    result = _run(args, tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "OperationalError" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: no printgate schema at sqlite+aiosqlite:///var/printgate.db: "
        "pass --config <file> or run `printgate db upgrade`"]
    assert not (tmp_path / "var" / "printgate.db").exists()


def test_empty_sqlite_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir()
    sqlite3.connect(tmp_path / "var" / "printgate.db").close()
    result = _run(["admin", "dealers"], tmp_path)
    assert result.returncode == 2
    assert "no printgate schema at" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.postgres
def test_postgresql_database_without_schema_is_refused(tmp_path: Path) -> None:
    url = create_pg_database()
    try:
        result = _run(["admin", "dealers"], tmp_path, {"PRINTGATE_DATABASE_URL": url})
    finally:
        drop_pg_database(url)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (f"error: no printgate schema at {url}: "
                                     "pass --config <file> or run `printgate db upgrade`")


def test_upgraded_database_still_works(tmp_path: Path) -> None:
    assert _run(["db", "upgrade"], tmp_path).returncode == 0
    result = _run(["admin", "dealers"], tmp_path)
    assert result.returncode == 0, result.stderr


def test_upgrade_says_it_created_the_schema_then_that_it_is_up_to_date(tmp_path: Path) -> None:
    first = _run(["db", "upgrade"], tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("created the printgate schema at sqlite+aiosqlite:///var/printgate.db (newest "
                                   "revision "), first.stdout
    assert "branch heads)" in first.stdout and "Running upgrade" not in first.stderr + first.stdout
    again = _run(["db", "upgrade"], tmp_path)
    assert again.returncode == 0 and again.stdout.startswith(
        "database at sqlite+aiosqlite:///var/printgate.db is up to date (newest revision "), again.stdout


def test_a_command_given_config_before_the_upgrade_names_the_upgrade_to_run(tmp_path: Path) -> None:
    config = tmp_path / "printgate.toml"
    config.write_text(f'database_url = "sqlite+aiosqlite:///{tmp_path}/fresh.db"\n')
    result = _run(["admin", "create-dealer", "Acme", "--admin-email", "a@acme.example", "--config", str(config)],
                  tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip() == (f"error: no printgate schema at sqlite+aiosqlite:///{tmp_path}/fresh.db yet: "
                                     f"run `printgate db upgrade --config {config}` first (it creates the schema)")
    assert "pass --config" not in result.stderr and not (tmp_path / "fresh.db").exists()
