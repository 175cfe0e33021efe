"""A second invitation for the same person revokes the first (issue 15): an older link left in a
mailbox must not set the password any more; re-inviting an existing account with other roles is
refused unless ``--replace-roles`` says so, and then the change is audited. The real
``printgate admin`` command as a process and the served portal on the same database."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from audit.log import AuditLog
from printgate.domain import Role, event_types
from printgate.store.db import Database
from printgate.store.models.audit import AuditRecordRow
from printgate.store.users import get_user_by_email
from printgate.testing.database import fresh_database
from printgate.testing.portal import create_user, csrf_of, portal_served

PRINTGATE = str(Path(sys.executable).with_name("printgate"))


@dataclass
class Portal:
    url: str
    db: Database


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def portal(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Portal]:
    async with fresh_database(request.param, tmp_path_factory.mktemp(f"reinvite-{request.param}")) as db:
        async with portal_served(db, AuditLog(db, None)) as (url, _clock):
            yield Portal(url, db)


async def _cli(portal: Portal, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRINTGATE_")}
    env |= {"PRINTGATE_DATABASE_URL": portal.db.url, "PRINTGATE_PORTAL__PUBLIC_URL": portal.url, "COLUMNS": "200"}
    return await asyncio.to_thread(subprocess.run, [PRINTGATE, "admin", *args], capture_output=True, text=True,
                                   timeout=60, env=env)


def _link(out: str) -> str:
    return next(line for line in out.splitlines() if "/invite/" in line).strip()


async def _set_password(client: httpx.AsyncClient, link: str, password: str) -> httpx.Response:
    page = await client.get(link)
    if page.status_code != 200:
        return page
    return await client.post(link, data={"display_name": "Ann", "password": password,
                                         "csrf_token": csrf_of(page.text)})


async def _audit_types(db: Database) -> list[tuple[str, dict]]:
    async with db.session() as s:
        rows = (await s.execute(select(AuditRecordRow).order_by(AuditRecordRow.seq))).scalars().all()
    return [(r.type, json.loads(r.entry or "{}").get("details") or {}) for r in rows]


async def test_a_new_invitation_revokes_the_older_unused_link(portal: Portal) -> None:
    made = await _cli(portal, "create-dealer", "Reinvite Co", "--admin-email", "ann@reinvite.example")
    assert made.returncode == 0, made.stderr
    first = _link(made.stdout)
    again = await _cli(portal, "add-user", "ann@reinvite.example", "--role", "dealer_admin",
                       "--dealer", "reinvite-co")
    assert again.returncode == 0, again.stderr
    second = _link(again.stdout)
    assert first != second
    assert "revoked 1 earlier unused sign-in link(s) for ann@reinvite.example" in again.stdout
    async with httpx.AsyncClient(base_url=portal.url, timeout=10, headers={"accept": "text/html"}) as c:
        old = await c.get(first)
        assert old.status_code == 410 and "unknown, used or expired" in old.text
        chosen = await _set_password(c, second, "the newest link's long password")
        assert chosen.status_code == 303 and chosen.headers["location"] == "/login?password_set=1"
        signin = (await c.get(chosen.headers["location"])).text
        assert "Password set — sign in with your e-mail and the new password." in signin
        # the old link cannot overwrite the password chosen with the new one
        assert (await _set_password(c, first, "an attacker's long password!")).status_code == 410
    invited = [d for t, d in await _audit_types(portal.db) if t == event_types.RBAC_INVITED]
    assert invited[-1]["revoked_invitations"] and len(invited[-1]["revoked_invitations"]) == 1


async def test_reinviting_with_other_roles_is_refused_or_replaced_explicitly(portal: Portal) -> None:
    made = await _cli(portal, "create-dealer", "Roles Co", "--id", "d-roles", "--admin-email", "boss@roles.example")
    assert made.returncode == 0, made.stderr
    user, _ = await create_user(portal.db, Role.DEALER_ADMIN, dealer="d-roles")
    refused = await _cli(portal, "add-user", user.email, "--role", "technician", "--dealer", "d-roles")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert (f"{user.email} exists already with the roles dealer_admin; to give them technician instead, "
            "run the same command with --replace-roles") in refused.stderr
    async with portal.db.session() as s:
        assert (await get_user_by_email(s, user.email)).roles == frozenset({Role.DEALER_ADMIN})  # type: ignore[union-attr]
    same = await _cli(portal, "add-user", user.email, "--role", "dealer_admin", "--dealer", "d-roles")
    assert same.returncode == 0, same.stderr
    assert "exists already (roles dealer_admin unchanged): the link lets them choose a new password" in same.stdout
    replaced = await _cli(portal, "add-user", user.email, "--role", "technician", "--dealer", "d-roles",
                          "--replace-roles")
    assert replaced.returncode == 0, replaced.stderr
    assert "roles changed from dealer_admin to technician" in replaced.stdout
    assert "revoked 1 earlier unused sign-in link(s)" in replaced.stdout
    async with portal.db.session() as s:
        assert (await get_user_by_email(s, user.email)).roles == frozenset({Role.TECHNICIAN})  # type: ignore[union-attr]
    changed = [d for t, d in await _audit_types(portal.db) if t == event_types.RBAC_ROLES_CHANGED]
    assert changed[-1] == {"user": user.id, "from": ["dealer_admin"], "to": ["technician"]}
