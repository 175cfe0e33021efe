"""Test users (``printgate.testing.portal.create_user``) share one argon2id hash of ``PASSWORD``,
made once per process instead of once per user; it is a real hash that signing in verifies."""

from __future__ import annotations

from sqlalchemy import select

from portal.auth.passwords import needs_rehash, verify_password
from printgate.domain import Role
from printgate.store.db import Database
from printgate.store.models.core import UserRow
from printgate.testing.portal import PASSWORD, create_user
from printgate.testing.tenancy import Tenancy


async def test_test_users_share_one_real_hash_of_the_password(db: Database) -> None:
    await Tenancy().dealer("d1").save(db)
    made = [(await create_user(db, Role.TECHNICIAN))[0] for _ in range(3)]
    async with db.session() as s:
        hashes = {row.password_hash for row in (await s.scalars(select(UserRow))).all()
                  if row.id in {u.id for u in made}}
    assert len(hashes) == 1, "each test user was hashed on its own"
    [hashed] = hashes
    assert hashed is not None and hashed.startswith("$argon2id$") and not needs_rehash(hashed)
    assert verify_password(hashed, PASSWORD) and not verify_password(hashed, PASSWORD + "!")
