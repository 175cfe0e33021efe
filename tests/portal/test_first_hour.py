"""docs/operations.md "The first hour", step by step, from an empty database: the real
``printgate`` command (db upgrade, serve, admin, agent enroll) as processes and a browser-like
client on the served portal. No demo, nothing written to the database by the test."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import shlex
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from lab.ports import free_tcp_port
from printgate.testing.portal import csrf_of, rfc6238

PRINTGATE = str(Path(sys.executable).with_name("printgate"))
PASSWORD = "a long first-hour password"
SERVE_LINE = re.compile(r"agent enrolment: (?P<addr>\S+), agent CA (?P<ca>\S+) \(SHA-256 (?P<fp>[0-9A-F:]+)\)")


async def printgate(*args: str | Path, expect: int = 0) -> tuple[str, str]:
    proc = await asyncio.create_subprocess_exec(PRINTGATE, *map(str, args), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == expect, f"printgate {args}: exit {proc.returncode}\n{out.decode()}\n{err.decode()}"
    return out.decode(), err.decode()


def write_config(path: Path, database_url: str, data_dir: Path) -> tuple[Path, str]:
    portal = free_tcp_port()
    ports = {k: free_tcp_port() for k in ("relay_port", "proxy_port", "grpc_port", "enrol_port")}
    lines = [f"database_url = {json.dumps(database_url)}", 'log_level = "info"', "log_json = false",
             "[portal]", f"port = {portal}", f'public_url = "http://127.0.0.1:{portal}"',
             f'secret_key = "{secrets.token_urlsafe(32)}"', "[gateway]",
             *(f"{k} = {v}" for k, v in ports.items()), f"data_dir = {json.dumps(str(data_dir))}"]
    path.write_text("\n".join(lines) + "\n")
    return path, f"http://127.0.0.1:{portal}"


@asynccontextmanager
async def serving(config: Path, log: Path) -> AsyncIterator[re.Match[str]]:
    """``printgate serve`` until its start-up lines name the enrolment address and agent CA."""
    out = open(log, "wb")
    proc = await asyncio.create_subprocess_exec(PRINTGATE, "serve", "--config", str(config),
                                                stdout=out, stderr=out)
    out.close()
    try:
        for _ in range(600):
            found = SERVE_LINE.search(log.read_text(errors="replace"))
            if found or proc.returncode is not None:
                break
            await asyncio.sleep(0.1)
        assert found, f"serve did not report the enrolment facts:\n{log.read_text()[-3000:]}"
        yield found
    finally:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 30)


async def accept_invitation(client: httpx.AsyncClient, link: str, name: str, email: str) -> None:
    """Open the one-use link, choose a password, sign in, enrol an authenticator (TOTP)."""
    page = await client.get(link)
    assert page.status_code == 200, page.text
    r = await client.post(link, data={"display_name": name, "password": PASSWORD, "csrf_token": csrf_of(page.text)})
    assert r.status_code == 303, r.text
    assert (await client.get(link)).status_code == 410  # used once
    page = await client.get("/login")
    r = await client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf_of(page.text)})
    assert r.status_code == 303 and r.headers["location"].startswith("/mfa/enrol"), r.text
    page = await client.get(r.headers["location"])
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text)
    pending = re.search(r'name="pending" value="([^"]+)"', page.text)
    assert secret and pending, page.text
    from datetime import UTC, datetime

    r = await client.post("/mfa/enrol", data={"pending": pending.group(1), "csrf_token": csrf_of(page.text),
                                              "code": rfc6238(secret.group(1), datetime.now(UTC))})
    assert r.status_code == 200 and "recovery" in r.text.lower(), r.text


async def test_first_hour_from_an_empty_database(database_url: str, tmp_path: Path) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="fh-", dir="/tmp"))  # short: the relay's Unix socket paths
    try:
        await first_hour(database_url, tmp_path, data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


async def first_hour(database_url: str, tmp_path: Path, data_dir: Path) -> None:
    config, portal_url = write_config(tmp_path / "printgate.toml", database_url, data_dir)

    # 1. the schema
    out, _ = await printgate("db", "upgrade", "--config", config)
    assert out.startswith("created the printgate schema at "), out  # an empty database (issue 15)

    # 2. serve: portal URL, enrolment address, agent CA path and fingerprint in its output
    async with serving(config, tmp_path / "serve.log") as facts:
        ca_path = Path(facts["ca"])
        openssl = await asyncio.create_subprocess_exec(
            "openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", str(ca_path),
            stdout=asyncio.subprocess.PIPE)
        assert facts["fp"] in (await openssl.communicate())[0].decode()

        # 3. the first dealer and its administrator's one-use sign-in link
        out, _ = await printgate("admin", "create-dealer", "Acme Print Services",
                                 "--admin-email", "Admin@Acme-Print.example", "--config", config)
        admin_link = out.strip().splitlines()[-1]
        assert admin_link.startswith(f"{portal_url}/invite/pgt_"), out
        _, err = await printgate("admin", "create-dealer", "Acme Print Services", "--admin-email",
                                 "x@acme-print.example", "--config", config, expect=2)
        assert "exists already" in err
        out, _ = await printgate("admin", "dealers", "--config", config)
        assert "acme-print-services\tAcme Print Services" in out

        async with httpx.AsyncClient(base_url=portal_url, timeout=30, headers={"accept": "text/html"}) as admin:
            # 4. the administrator signs in for the first time
            await accept_invitation(admin, admin_link, "Ada Admin", "admin@acme-print.example")

            # 5. a customer and its site
            page = await admin.get("/admin/tenants")
            r = await admin.post("/admin/tenants/customers", data={"name": "Contoso Offices",
                                                                    "csrf_token": csrf_of(page.text)})
            assert r.status_code == 303
            page = await admin.get("/admin/tenants")
            customer_id = re.search(r'data-customer-id="([^"]+)"><td[^>]*>Contoso Offices', page.text)
            assert customer_id, page.text
            r = await admin.post(f"/admin/tenants/customers/{customer_id.group(1)}/sites",
                                 data={"name": "Head office", "csrf_token": csrf_of(page.text)})
            assert r.status_code == 303

            # 6. an enrolment token: the page gives the CA, its fingerprint and the whole command
            page = await admin.get("/agents")
            site_id = re.search(r'data-site-id="([^"]+)"', page.text)
            assert site_id, page.text
            token_page = await admin.post(f"/agents/sites/{site_id.group(1)}/enrolment-token",
                                          data={"csrf_token": csrf_of(page.text)})
            assert token_page.status_code == 200, token_page.text
            assert facts["fp"] in token_page.text
            command = re.search(r'<pre class="command" id="enrol-command">([^<]+)</pre>', token_page.text)
            assert command, token_page.text
            ca = await admin.get("/agents/agent-ca.pem")
            assert ca.status_code == 200 and ca.content == ca_path.read_bytes()

        # 7. on the agent host: without the CA the enrolment fails and says what to pass ...
        agent_host = tmp_path / "agent-host"
        agent_host.mkdir()
        (agent_host / "agent-ca.crt").write_bytes(ca.content)
        argv = shlex.split(command.group(1))
        assert argv[argv.index("--data-dir") + 1] == "/var/lib/printgate-agent"  # says where it writes
        assert argv[:3] == ["printgate", "agent", "enroll"] and argv[argv.index("--url") + 1] == facts["addr"]
        without_ca = [a for i, a in enumerate(argv) if "--ca-cert" not in (a, argv[i - 1])]
        _, err = await printgate(*without_ca[1:], "--data-dir", agent_host / "data", expect=2)
        assert "CERTIFICATE_VERIFY_FAILED" in err and "--ca-cert" in err, err
        # ... and with it (the command exactly as the page shows it, run where the CA was saved)
        args = [str(agent_host / a) if a == "agent-ca.crt" else a for a in argv[1:]]
        out, _ = await printgate(*args, "--data-dir", agent_host / "data")
        assert "enrolled as" in out
        assert "printgate agent run --config" in out and f'data_dir = "{agent_host / "data"}"' in out  # what next

        # 8. the operator sees the agent
        out, _ = await printgate("admin", "agents", "--json", "--config", config)
        agents = json.loads(out)
        assert [(a["customer"], a["site"], a["revoked"]) for a in agents] == [
            ("Contoso Offices", "Head office", False)]

        # 9. staff: a technician of the dealer and an approver of the customer
        out, _ = await printgate("admin", "add-user", "tech@acme-print.example", "--role", "technician",
                                 "--dealer", "acme-print-services", "--config", config)
        tech_link = out.strip().splitlines()[-1]
        _, err = await printgate("admin", "add-user", "boss@contoso.example", "--role", "technician",
                                 "--customer", customer_id.group(1), "--config", config, expect=2)
        assert "cannot be granted" in err
        out, _ = await printgate("admin", "add-user", "boss@contoso.example", "--role", "customer_admin",
                                 "--customer", customer_id.group(1), "--config", config)
        assert "/invite/pgt_" in out
        async with httpx.AsyncClient(base_url=portal_url, timeout=30, headers={"accept": "text/html"}) as tech:
            await accept_invitation(tech, tech_link, "Tom Technician", "tech@acme-print.example")
            devices = await tech.get("/devices")
            assert devices.status_code == 200

            # 10. the API and its description
            spec = (await tech.get("/api/openapi.json")).json()
            assert {"/api/me", "/api/devices", "/api/sessions"} <= set(spec["paths"])
            me = (await tech.get("/api/me")).json()
            assert me["roles"] == ["technician"] and me["dealer_id"] == "acme-print-services"

        # 11. revoking an agent
        out, _ = await printgate("admin", "revoke-agent", agents[0]["id"], "--reason", "host retired",
                                 "--config", config)
        assert "revoked (1 certificate)" in out
        out, _ = await printgate("admin", "agents", "--json", "--config", config)
        assert json.loads(out)[0]["revoked"] is True

    # everything the operator did from the shell is in the audit trail, with who did it
    await printgate("audit", "export", "--with-personal", "--out", tmp_path / "audit.jsonl", "--config", config)
    lines = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines() if line.strip()]
    types = {r["seq"]: r["type"] for r in lines if "type" in r}
    actors = {p["@personal"]["seq"]: p["@personal"]["fields"].get("actor", {}).get("value")
              for p in lines if "@personal" in p}
    by_cli = {types[seq] for seq, actor in actors.items() if str(actor).startswith("cli:")}
    assert {"tenant.dealer_added", "rbac.invited", "agent.revoked"} <= by_cli, by_cli
