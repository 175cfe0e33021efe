"""Customers: names are unique within a dealer, ids are shown for the shell, and a dealer
administrator sees the open invitations of its customers' staff."""

from __future__ import annotations

import asyncio
import html
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from alembic import command
from sqlalchemy import create_engine, select, text

from lab.ports import free_tcp_port
from portal.app import create_app
from portal.invitations import create_invitation
from printgate.domain import Customer, CustomerId, Dealer, DealerId, Role
from printgate.errors import CustomerNameTaken
from printgate.settings import PortalSettings
from printgate.store import tenants
from printgate.store.db import Database, alembic_config, migrate
from printgate.store.models.identity import InvitationRow
from printgate.store.tenants import add_customer
from printgate.testing.audit import RecordingAuditSink
from printgate.testing.broker import PolicyBroker
from printgate.testing.database import migrated, sqlite_url
from printgate.testing.portal import Clock, create_user, csrf_of, served, sign_in
from printgate.testing.tenancy import Tenancy
from tests.portal.test_error_pages import Served, served_portal  # noqa: F401  (the served portal)

PRINTGATE = str(Path(sys.executable).with_name("printgate"))


@pytest.fixture
async def dealer_admin(served_portal: Served) -> AsyncIterator[httpx.AsyncClient]:  # noqa: F811
    user, secret = await create_user(served_portal.db, Role.DEALER_ADMIN)
    async with httpx.AsyncClient(base_url=served_portal.url, timeout=10,
                                 headers={"accept": "text/html"}) as c:
        await sign_in(c, served_portal, user, secret)
        yield c


async def _add(client: httpx.AsyncClient, name: str) -> httpx.Response:
    page = await client.get("/admin/tenants")
    return await client.post("/admin/tenants/customers", data={"name": name, "csrf_token": csrf_of(page.text)})


async def test_duplicate_customer_name_is_refused_with_a_clear_message(dealer_admin: httpx.AsyncClient) -> None:
    assert (await _add(dealer_admin, "Northwind Traders")).status_code == 303
    for again in ("Northwind Traders", "  northwind TRADERS "):
        r = await _add(dealer_admin, again)
        assert r.status_code == 409, r.text
        assert "already have a customer named" in r.text and "choose another name" in r.text
    page = (await dealer_admin.get("/admin/tenants")).text
    assert page.count(">Northwind Traders<") == 1  # one row (its name is also the cell's tooltip)
    assert "id <code>c-open</code>" in page  # the id the shell's --customer also takes


async def test_another_dealer_may_use_the_same_name(served_portal: Served) -> None:  # noqa: F811
    user, secret = await create_user(served_portal.db, Role.DEALER_ADMIN, dealer="d2")
    async with httpx.AsyncClient(base_url=served_portal.url, timeout=10, headers={"accept": "text/html"}) as c:
        await sign_in(c, served_portal, user, secret)
        assert (await _add(c, "Customer c-open")).status_code == 303  # d1 has one; d2 may too


async def test_dealer_admin_sees_invitations_of_its_customers(served_portal: Served,  # noqa: F811
                                                              dealer_admin: httpx.AsyncClient) -> None:
    async with served_portal.db.transaction() as s:
        await create_invitation(s, email="it@contoso.example", roles=["customer_admin"], dealer_id=None,
                                customer_id="c-appr", invited_by="cli:test", now=datetime.now(UTC))
        await create_invitation(s, email="it@elsewhere.example", roles=["customer_admin"], dealer_id=None,
                                customer_id="c-other", invited_by="cli:test", now=datetime.now(UTC))
    page = (await dealer_admin.get("/admin/users")).text
    assert "it@contoso.example (customer administrator, customer Customer c-appr)" in page  # roles in words
    assert "it@elsewhere.example" not in page  # another dealer's customer


def _cli(args: list[str], url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRINTGATE_")}
    return subprocess.run([PRINTGATE, "admin", *args], capture_output=True, text=True, timeout=60,
                          env={**env, "PRINTGATE_DATABASE_URL": url, "COLUMNS": "200"})


async def test_add_user_takes_the_customer_name(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "cli.db")
    async with migrated(url) as db:
        assert _cli(["create-dealer", "Acme", "--admin-email", "a@acme.example"], url).returncode == 0
        assert _cli(["create-dealer", "Zeta", "--admin-email", "z@zeta.example"], url).returncode == 0
        async with db.transaction() as s:
            await add_customer(s, Customer(CustomerId("contoso-1"), DealerId("acme"), "Contoso Offices"))
        ok = _cli(["add-user", "it@contoso.example", "--role", "customer_admin", "--customer", "contoso offices"],
                  url)
        assert ok.returncode == 0, ok.stderr
        async with db.session() as s:
            row = (await s.execute(select(InvitationRow).where(InvitationRow.email == "it@contoso.example"))
                   ).scalar_one()
        assert row.customer_id == "contoso-1"
        async with db.transaction() as s:
            await add_customer(s, Customer(CustomerId("contoso-2"), DealerId("zeta"), "Contoso Offices"))
        both = _cli(["add-user", "b@contoso.example", "--role", "viewer", "--customer", "Contoso Offices"], url)
        assert both.returncode == 2
        assert "give the id, one of contoso-1, contoso-2" in both.stderr and "Traceback" not in both.stderr
        none = _cli(["add-user", "c@contoso.example", "--role", "viewer", "--customer", "Fabrikam"], url)
        assert none.returncode == 2 and "no customer with the id or name 'Fabrikam'" in none.stderr


async def test_the_database_refuses_a_second_customer_of_a_name_at_one_dealer(db: Database) -> None:
    """The unique index of migration 0014 holds the rule even past the application's check."""
    async with db.transaction() as s:
        for dealer in ("d1", "d2"):
            await tenants.add_dealer(s, Dealer(DealerId(dealer), dealer))
        await s.flush()
        await add_customer(s, Customer(CustomerId("c1"), DealerId("d1"), "Northwind"))
    async with db.transaction() as s:
        with pytest.raises(CustomerNameTaken) as refused:
            await add_customer(s, Customer(CustomerId("c2"), DealerId("d1"), "  NORTHWIND "))
        assert refused.value.code == "customer_name_taken" and "(id c1)" in refused.value.message
        # the session stays usable: another dealer may use the name in the same transaction
        await add_customer(s, Customer(CustomerId("c3"), DealerId("d2"), "Northwind"))
    async with db.session() as s:
        assert [c.id for c in await tenants.customers_named(s, "northwind")] == ["c1", "c3"]


def _at_core_with_duplicates(url: str) -> None:
    command.upgrade(alembic_config(url), "0001_core")
    engine = create_engine(url.replace("+aiosqlite", "").replace("+asyncpg", "+psycopg"))
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO dealers (id, name) VALUES ('d1', 'D1')"))
        for cid, name in (("c-a", "Acme"), ("c-b", " acme "), ("c-c", "Other")):
            conn.execute(text("INSERT INTO customers (id, dealer_id, name, remote_access) "
                              "VALUES (:i, 'd1', :n, 'open')"), {"i": cid, "n": name})
    engine.dispose()


async def test_migration_0014_refuses_existing_duplicates_and_names_them(database_url: str) -> None:
    await asyncio.to_thread(_at_core_with_duplicates, database_url)
    with pytest.raises(CustomerNameTaken) as refused:
        await migrate(database_url)
    message = refused.value.message
    assert "dealer d1: 'acme' is customers c-a, c-b" in message.lower() or "c-a, c-b" in message
    assert "Rename one" in message and "printgate db upgrade" in message
    # renamed as the message says, the upgrade goes through and the index is there
    engine = create_engine(database_url.replace("+aiosqlite", "").replace("+asyncpg", "+psycopg"))
    with engine.begin() as conn:
        conn.execute(text("UPDATE customers SET name = 'Acme (Leeds)' WHERE id = 'c-b'"))
    engine.dispose()
    await migrate(database_url)
    async with migrated(database_url) as db, db.transaction() as s:
        with pytest.raises(CustomerNameTaken):
            await add_customer(s, Customer(CustomerId("c-d"), DealerId("d1"), "ACME (leeds)"))


async def test_concurrent_additions_of_one_name_give_one_customer_and_clear_refusals(db: Database) -> None:
    """Requests racing past the application's name check meet the database's unique index: one
    customer, the others a 409 page naming the existing one, never a 500 (SQLite and PostgreSQL)."""
    await Tenancy().dealer("d1").save(db)
    port, clock = free_tcp_port(), Clock()
    base = f"http://127.0.0.1:{port}"
    app = create_app(PortalSettings(public_url=base, secret_key=secrets.token_urlsafe(32)), db=db,
                     broker=PolicyBroker(db, clock, base), audit=RecordingAuditSink(), clock=clock)
    admin, secret = await create_user(db, Role.DEALER_ADMIN, dealer="d1")
    async with served(app, port):
        clients = [httpx.AsyncClient(base_url=base, timeout=30, headers={"accept": "text/html"})
                   for _ in range(6)]
        try:
            for c in clients:
                await sign_in(c, SimpleNamespace(clock=clock), admin, secret)
                clock.advance(seconds=30)  # each sign-in's TOTP code in its own step (no replay)
            pages = [await c.get("/admin/tenants") for c in clients]
            answers = await asyncio.gather(*(
                c.post("/admin/tenants/customers", data={"name": "Racing Offices", "csrf_token": csrf_of(p.text)})
                for c, p in zip(clients, pages, strict=True)))
        finally:
            for c in clients:
                await c.aclose()
    codes = sorted(r.status_code for r in answers)
    assert codes == [303] + [409] * 5, codes
    refusals = [html.unescape(r.text) for r in answers if r.status_code == 409]
    assert all("customer named 'Racing Offices'" in t and "choose another name" in t for t in refusals)
    async with db.session() as s:
        assert len(await tenants.customers_named(s, "racing offices", dealer_id="d1")) == 1
