"""``printgate serve`` started while PostgreSQL is down (issue 14 a14 ``pg_down_at_start.sh``): it waits
with back-off, one line per attempt ("database unreachable at host:port: ...; retrying in Ns"), and
either starts once the database answers or, after ``database_start_wait_seconds``, exits 2 with one
clear line -- never the ~660-line traceback from the start-up migration."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx

from lab.ports import free_tcp_port
from tests.faults.conftest import OwnPostgres

PRINTGATE = str(Path(sys.executable).with_name("printgate"))


def _config(tmp_path: Path, pg: OwnPostgres, wait: float) -> tuple[Path, int]:
    port = free_tcp_port()
    gw = {name: free_tcp_port() for name in ("relay_port", "proxy_port", "grpc_port", "enrol_port")}
    lines = [f"database_url = {json.dumps(pg.url)}", 'log_level = "info"', f"database_start_wait_seconds = {wait}",
             "[portal]", 'host = "127.0.0.1"', f"port = {port}", f'public_url = "http://127.0.0.1:{port}"',
             'secret_key = "h14d-a-long-random-enough-test-secret-key-0123456789"',
             "[gateway]", *(f"{k} = {v}" for k, v in gw.items()), f'data_dir = "{tmp_path / "cloud"}"']
    config = tmp_path / "cloud.toml"
    config.write_text("\n".join(lines) + "\n")
    return config, port


async def _serve(config: Path, log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(PRINTGATE, "serve", "--config", str(config),
                                                    stdout=out, stderr=out)


def _attempts(text: str) -> list[str]:
    return [json.loads(line)["message"] for line in text.splitlines()
            if line.startswith("{") and "db.unreachable_at_start" in line]


async def test_serve_gives_up_after_the_wait_with_one_line_and_exit_2(
    tmp_path: Path, own_postgres: OwnPostgres,
) -> None:
    own_postgres.stop()
    config, _ = _config(tmp_path, own_postgres, wait=6)
    log = tmp_path / "serve.log"
    proc = await _serve(config, log)
    code = await asyncio.wait_for(proc.wait(), 60)
    said = log.read_text()
    assert code == 2, said[-3000:]
    assert "Traceback" not in said, said[-3000:]
    attempts = _attempts(said)
    where = f"127.0.0.1:{own_postgres.port}"
    assert len(attempts) >= 2 and all(a.startswith(f"database unreachable at {where}: ") for a in attempts), attempts
    assert "retrying in 1s" in attempts[0] and "retrying in 2s" in attempts[1]  # back-off
    final = [line for line in said.splitlines() if line.startswith("printgate serve:")]
    assert len(final) == 1 and f"database unreachable at {where}" in final[0], said[-2000:]
    assert "database_start_wait_seconds" in final[0]
    assert len(said.splitlines()) <= len(attempts) + 3, said  # no flood


async def test_serve_waits_for_the_database_and_starts_when_it_answers(
    tmp_path: Path, own_postgres: OwnPostgres,
) -> None:
    own_postgres.stop()
    config, port = _config(tmp_path, own_postgres, wait=120)
    log = tmp_path / "serve.log"
    proc = await _serve(config, log)
    try:
        async with asyncio.timeout(30):
            while len(_attempts(log.read_text())) < 2:
                assert proc.returncode is None, log.read_text()[-3000:]
                await asyncio.sleep(0.2)
        await asyncio.to_thread(own_postgres.start)
        async with httpx.AsyncClient(timeout=5) as client:
            async with asyncio.timeout(90):
                while True:
                    assert proc.returncode is None, log.read_text()[-3000:]
                    try:
                        if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.5)
        said = log.read_text()
        assert "Traceback" not in said, said[-3000:]
        assert "printgate serving" in said
    finally:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 60)
