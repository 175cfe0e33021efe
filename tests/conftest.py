"""Shared fixtures: databases on both backends (SQLite file, real PostgreSQL)."""

from __future__ import annotations

import errno
import os
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from lab.ports import who_claimed
from printgate.store.db import Database
from printgate.testing.database import (
    create_pg_database,
    discard_pg_database,
    migrated,
    release_test_databases,
    sqlite_url,
)


@pytest.fixture
def pg_database(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the local server; dropped afterwards. For a test that
    also takes ``db`` it is a copy of the migrated template (``db`` would migrate it anyway), made
    ahead of the test in the background."""
    try:
        url = create_pg_database(migrated="db" in request.fixturenames)
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 unavailable: {exc}")
    yield url
    discard_pg_database(url)  # dropped by a background thread while the next test runs


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "printgate.db")
    return str(request.getfixturevalue("pg_database"))


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    async with migrated(database_url) as database:
        yield database


# Folders whose tests share one session-scoped system (the e2e demo system, the portal's seeded
# portal) and expect the earlier tests' traces in it: under pytest-xdist (scripts/test.sh,
# --dist loadgroup) each runs whole on one worker, in order. Every other test file is a group of
# its own, so module-scoped fixtures are built once, not once per worker.
WHOLE_FOLDER_GROUPS = ("e2e", "portal")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests = Path(__file__).parent
    for item in items:
        try:
            rel = item.path.relative_to(tests)
        except ValueError:
            continue
        group = rel.parts[0] if len(rel.parts) > 1 and rel.parts[0] in WHOLE_FOLDER_GROUPS else rel.as_posix()
        item.add_marker(pytest.mark.xdist_group(group))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The test databases' background drops finish and the templates go (here, not at exit: a
    pytest-xdist worker ends without running exit handlers)."""
    release_test_databases()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """A test whose server found its port taken says who holds the port and who claimed it."""
    report = yield
    exc = call.excinfo.value if call.excinfo is not None else None
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        for port in sorted(set(re.findall(r"\b(\d{4,5})\b", str(exc)))):
            held = subprocess.run(["ss", "-Htanup", f"sport = :{port}"], capture_output=True, text=True, check=False)
            claims = who_claimed(int(port))
            report.sections.append((f"port {port}", f"ss:\n{held.stdout}{held.stderr}claims:\n" + "\n".join(claims)))
            crash = getattr(report.longrepr, "reprcrash", None)
            if crash is not None:  # the short summary, the part of a CI log that is always seen
                crash.message += f" [port {port}: {' | '.join(held.stdout.split()) or 'free now'}; claims: {claims}]"
    return report
