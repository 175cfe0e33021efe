"""The CLI as a newcomer met it (newcomer findings 2, 4, 9, 10, 11, 15, 6): each command run for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.channel.enroll import EnrolledIdentity
from printgate.cli.policy import _explain
from printgate.domain import DeviceIdentity, Role
from printgate.settings import Settings
from printgate.store import nodes
from printgate.store.db import Database
from printgate.testing.database import create_pg_database, drop_pg_database, migrated, sqlite_url
from printgate.testing.portal import create_user
from printgate.testing.tenancy import Tenancy

PRINTGATE = str(Path(sys.executable).with_name("printgate"))


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PRINTGATE_")}
    return subprocess.run([PRINTGATE, *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={**clean, "COLUMNS": "200", **(env or {})})


async def _seeded(tmp_path: Path) -> tuple[Path, str]:
    """A migrated SQLite database with dealers d1 ("Demo Print Services") and d2, customers, devices;
    a settings file naming it (portal port 18400, enrolment port 18444)."""
    url = sqlite_url(tmp_path / "pg.db")
    async with migrated(url) as db:
        t = Tenancy().dealer("d1", "Demo Print Services").dealer("d2", "Other Dealer")
        t.customer("c1", "d1", "Acme Offices").site("s1", "c1").agent("a1", "s1", online=True)
        t.customer("c2", "d2", "Acme Offices").site("s2", "c2").agent("a2", "s2", online=True)
        t.device("dev-front", "s1", "a1", "127.0.20.7", DeviceIdentity(serial="SN1", model="HP M404"),
                 name="Front desk LaserJet")
        t.device("dev-back", "s1", "a1", "127.0.20.8", DeviceIdentity(serial="SN2", model="HP M404"),
                 name="Twin")
        t.device("dev-other", "s2", "a2", "127.0.20.9", DeviceIdentity(serial="SN3", model="HP M404"),
                 name="Twin")
        await t.save(db)
    config = tmp_path / "printgate.toml"
    config.write_text(f'database_url = "{url}"\n[portal]\nport = 18400\n[gateway]\nenrol_port = 18444\n')
    return config, url


@pytest.mark.postgres
def test_every_command_given_config_names_the_upgrade_to_run_for_it(tmp_path: Path) -> None:
    from audit.checkpoint import Signer

    (tmp_path / "audit.pem").write_text(Signer.generate().public_key_pem())
    url = create_pg_database()
    config = tmp_path / "n1.toml"
    config.write_text(f'database_url = "{url}"\n')
    commands = [["nodes", "list"], ["nodes", "haproxy", "--out", "lb"], ["nodes", "forget", "n9"],
                ["audit", "verify", "--public-key", "audit.pem"], ["audit", "export", "--out", "x.jsonl"],
                ["policy", "explain", "--user", "a@b.example", "--device", "dev-1"],
                ["fleet", "retention", "--dealer", "d1"], ["agent", "authorise-rekey", "ag-1", "--by", "me"]]
    try:
        results = {" ".join(c[:2]): _run([*c, "--config", str(config)], tmp_path) for c in commands}
    finally:
        drop_pg_database(url)
    expected = (f"error: no printgate schema at {url} yet: run `printgate db upgrade --config {config}` first "
                "(it creates the schema)")
    for name, result in results.items():
        assert result.returncode == 2, (name, result.stdout, result.stderr)
        assert result.stderr.strip() == expected, (name, result.stderr)  # one line: no ProgrammingError


def test_invitations_to_addresses_the_sign_in_form_refuses_are_refused(tmp_path: Path) -> None:
    import asyncio

    config, _url = asyncio.run(_seeded(tmp_path))
    dealer = _run(["admin", "create-dealer", "Foo", "--admin-email", "notanemail", "--config", str(config)], tmp_path)
    user = _run(["admin", "add-user", "bad email", "--role", "technician", "--dealer", "d1", "--config", str(config)],
                tmp_path)
    assert dealer.returncode == 2 and "sign-in link" not in dealer.stdout, dealer.stdout
    assert dealer.stderr.startswith("error: --admin-email: 'notanemail' is not an e-mail address"), dealer.stderr
    assert user.returncode == 2 and "sign-in link" not in user.stdout, user.stdout
    assert user.stderr.startswith("error: EMAIL: 'bad email' is not an e-mail address"), user.stderr
    listed = _run(["admin", "dealers", "--config", str(config)], tmp_path)
    assert "foo" not in listed.stdout.split()  # the dealer was not created either


def test_audit_export_of_an_unknown_tenant_fails_and_a_dealer_export_by_name_verifies(tmp_path: Path) -> None:
    import asyncio

    config, _url = asyncio.run(_seeded(tmp_path))
    c = ["--config", str(config)]
    nosuch = _run(["audit", "export", "--dealer", "nosuch", "--out", "a.jsonl", *c], tmp_path)
    assert nosuch.returncode == 2 and not (tmp_path / "a.jsonl").exists(), nosuch.stdout
    assert nosuch.stderr.strip() == ("error: --dealer: no dealer with the id or name 'nosuch' (dealers: "
                                     "d1 (Demo Print Services), d2 (Other Dealer); `printgate admin dealers` "
                                     "lists them)")
    twice = _run(["audit", "export", "--customer", "Acme Offices", "--out", "a.jsonl", *c], tmp_path)
    assert twice.returncode == 2 and "2 customers are named 'Acme Offices'" in twice.stderr, twice.stderr
    assert _run(["admin", "add-user", "t@d1.example", "--role", "technician", "--dealer", "d1", *c],
                tmp_path).returncode == 0
    assert _run(["audit", "keygen", "--out", "audit.key"], tmp_path).returncode == 0
    assert _run(["audit", "checkpoint", "--key", "audit.key", *c], tmp_path).returncode == 0
    export = _run(["audit", "export", "--dealer", "Demo Print Services", "--out", "d1.jsonl", *c], tmp_path)
    assert export.returncode == 0 and export.stdout.strip() == "wrote 1 records to d1.jsonl", export.stderr
    verify = _run(["audit", "verify", "--public-key", "audit.key.pub", "--file", "d1.jsonl"], tmp_path)
    assert verify.returncode == 0, verify.stderr
    assert "a filtered (one tenant's) export" in verify.stdout and "head 0000" not in verify.stdout, verify.stdout


def test_fleet_retention_takes_the_dealer_name_and_lists_dealers_otherwise(tmp_path: Path) -> None:
    import asyncio

    config, _url = asyncio.run(_seeded(tmp_path))
    named = _run(["fleet", "retention", "--dealer", "Demo Print Services", "--config", str(config)], tmp_path)
    assert named.returncode == 0 and named.stdout.startswith("dealer d1 keeps "), named.stderr
    nosuch = _run(["fleet", "retention", "--dealer", "Demo", "--config", str(config)], tmp_path)
    assert nosuch.returncode == 2 and "dealers: d1 (Demo Print Services), d2 (Other Dealer)" in nosuch.stderr


async def test_policy_explain_finds_a_device_by_ip_or_name_and_lists_candidates(tmp_path: Path) -> None:
    config, url = await _seeded(tmp_path)
    async with Database(url) as db:
        tech, _ = await create_user(db, Role.TECHNICIAN, dealer="d1")
    settings = Settings.load(config)
    by_id = await _explain(settings, tech.id, "dev-front", "127.0.0.1", 30.0)
    assert "[ownership.same_tenant]" in by_id[1], by_id  # the decision itself, not a message
    assert await _explain(settings, tech.id, "127.0.20.7", "127.0.0.1", 30.0) == by_id
    assert await _explain(settings, tech.id, "front desk laserjet", "127.0.0.1", 30.0) == by_id
    allow, text = await _explain(settings, tech.id, "Twin", "127.0.0.1", 30.0)
    assert not allow and text.startswith("2 devices match 'Twin': give the id of one: dev-back (") \
        and "dev-other (" in text
    allow, text = await _explain(settings, tech.id, "no-such", "127.0.0.1", 30.0)
    assert not allow and text.startswith("no device 'no-such': give the device's id, its IP address or its name")


def test_nodes_haproxy_takes_the_ports_of_its_config(tmp_path: Path) -> None:
    import asyncio

    config, url = asyncio.run(_seeded(tmp_path))

    async def register() -> None:
        async with Database(url) as db, db.transaction() as s:
            await nodes.register(s, "n1", host="127.0.0.1", pid=1, incarnation="i",
                                 addresses=nodes.NodeAddresses("127.0.0.1:18422", "127.0.0.1:18480",
                                                               "127.0.0.1:18443"),
                                 lease=timedelta(minutes=5), now=datetime.now(UTC))

    asyncio.run(register())
    result = _run(["nodes", "haproxy", "--out", "lb", "--config", str(config)], tmp_path)
    assert result.returncode == 0, result.stderr
    cfg = (tmp_path / "lb" / "nodes.cfg").read_text()
    assert "127.0.0.1:18400 check" in cfg and "127.0.0.1:18444 check" in cfg, cfg
    assert ":8400 " not in cfg and ":8444 " not in cfg


def _agent_dir(path: Path, channel: str) -> Path:
    path.mkdir()
    EnrolledIdentity(agent_id="ag-1", site_id="site-1", data_dir=path, command_verify_key=b"\x01" * 32,
                     relay_address="127.0.0.1:2222", relay_host_key_fingerprint="SHA256:x", mqtt_url="",
                     cert_not_after_ms=4_102_444_800_000).save()
    (path / "status.json").write_text(json.dumps({  # this test's process stands for the running agent
        "pid": os.getpid(), "written_at": "2026-12-05T18:00:00+00:00", "channel": channel,
        "tasks": [{"name": "channel", "state": "running", "healthy": True, "restarts": 0}]}))
    return path


def test_agent_status_of_a_refused_agent_is_not_healthy_and_the_data_dir_comes_from_the_environment(
        tmp_path: Path) -> None:
    refused = _agent_dir(tmp_path / "refused", "refused")
    _agent_dir(tmp_path / "fine", "connected")
    env_dir = _run(["agent", "status", "--json"], tmp_path, {"PRINTGATE_AGENT__DATA_DIR": str(tmp_path / "fine")})
    assert env_dir.returncode == 0, env_dir.stderr
    assert json.loads(env_dir.stdout)["healthy"] is True
    result = _run(["agent", "status", "--data-dir", str(refused)], tmp_path)
    assert result.returncode == 0, result.stderr
    fields = dict(line.strip().split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    assert fields["channel"] == "refused" and fields["healthy"] == "False", result.stdout
    assert fields["channel_problem"].startswith("the gateway refuses this agent"), result.stdout


def test_agent_run_not_enrolled_says_so_once(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    config = tmp_path / "agent.toml"
    config.write_text(f'[agent]\ndata_dir = "{tmp_path / "data"}"\ncloud_grpc = "127.0.0.1:9"\n')
    result = _run(["agent", "run", "--config", str(config)], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: agent is not enrolled ({tmp_path / 'data'}/identity.json missing): "
                                     "run `printgate agent enroll`")


def test_help_on_an_80_column_terminal_is_plain_and_not_truncated(tmp_path: Path) -> None:
    env = {"COLUMNS": "80"}
    result = _run(["audit", "verify", "--help"], tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert "╭" not in result.stdout and "…" not in result.stdout, result.stdout
    assert "<data_dir>/audit-keys.json" in result.stdout  # the whole text, wrapped, not cut
    assert max(len(line) for line in result.stdout.splitlines()) <= 80


def test_without_config_next_to_a_demo_the_refusal_points_at_the_demo_config(tmp_path: Path) -> None:
    (tmp_path / "var" / "demo").mkdir(parents=True)
    (tmp_path / "var" / "demo" / "printgate.toml").write_text('database_url = "sqlite+aiosqlite:///var/demo/x.db"\n')
    result = _run(["admin", "dealers"], tmp_path)
    assert result.returncode == 2 and "to reach the demo, pass --config var/demo/printgate.toml" in result.stderr
    assert not (tmp_path / "var" / "printgate.db").exists()
