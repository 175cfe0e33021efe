"""`printgate demo` as a person starts it: with PRINTGATE_DATABASE_URL it keeps its data in that
database (PostgreSQL here, not its own SQLite file), and it prints an account for every role
and the lab printers' EWS login; the printed technician account signs in."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from printgate.testing.database import psql
from printgate.testing.portal import csrf_of

PRINTGATE = str(Path(sys.executable).with_name("printgate"))
pytestmark = pytest.mark.postgres


async def test_demo_uses_the_configured_database_and_prints_every_role(tmp_path: Path) -> None:
    name = f"pgdemo_{uuid.uuid4().hex[:10]}"
    psql(f"CREATE DATABASE {name}")
    env = {**os.environ, "PRINTGATE_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}",
           "COLUMNS": "250"}
    out_path = tmp_path / "demo.out"
    out = open(out_path, "wb")
    proc = await asyncio.create_subprocess_exec(PRINTGATE, "demo", "--free-ports", "--data-dir",
                                                str(tmp_path / "demo"), stdout=out, stderr=out, env=env)
    out.close()
    try:
        text = ""
        for _ in range(1800):
            text = out_path.read_text(errors="replace")
            if "Press Ctrl-C" in text or proc.returncode is not None:
                break
            await asyncio.sleep(0.1)
        assert "Press Ctrl-C" in text, text[-3000:]
        assert f"127.0.0.1:5432/{name}" in text  # where its data is (password hidden)
        assert not (tmp_path / "demo" / "printgate.db").exists()
        accounts = {m[0]: (m[1], m[2]) for m in re.findall(
            r"^\s+(technician|dealer admin|auditor|customer approver)\s+(\S+@\S+)\s+password (\S+)", text, re.M)}
        assert set(accounts) == {"technician", "dealer admin", "auditor", "customer approver"}, text
        assert re.search(r"user 'admin', password 'admin-pass'", text)
        portal = re.search(r"Portal:\s+(http://127\.0\.0\.1:\d+)/login", text)
        assert portal
        proc_psql = await asyncio.create_subprocess_exec(
            "psql", "-h", "127.0.0.1", "-U", "postgres", "-d", name, "-Atc", "select email from users order by email",
            stdout=asyncio.subprocess.PIPE)
        emails = (await proc_psql.communicate())[0].decode().split()
        assert {email for email, _ in accounts.values()} <= set(emails)
        email, password = accounts["technician"]
        async with httpx.AsyncClient(base_url=portal.group(1), timeout=30) as client:
            page = await client.get("/login")
            r = await client.post("/login", data={"email": email, "password": password,
                                                  "csrf_token": csrf_of(page.text)})
            assert r.status_code == 303 and r.headers["location"].startswith("/login/verify")
    finally:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 60)
        psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
