"""``CredentialVault``: set, rotate, erase and resolve device credentials, every change audited
without the secret."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError

from printgate.domain import event_types
from printgate.domain.audit import AuditEventIn
from printgate.domain.credentials import (
    MAX_ACCOUNT,
    MAX_SECRET,
    CredentialScope,
    DeviceLogin,
    LoginKind,
    StoredCredential,
)
from printgate.errors import CredentialInvalid
from printgate.interfaces import AuditSink
from printgate.store import device_credentials as store
from printgate.store.db import Database
from printgate.vault.envelope import seal, unseal
from printgate.vault.kms import KeyWrapper

_PROFILE = re.compile(r"[a-z0-9_-]{0,64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _now() -> datetime:
    return datetime.now(UTC)


def normalise_target(scope: CredentialScope, target: str) -> str:
    target = target.strip()
    if scope is CredentialScope.CUSTOMER:
        return ""
    if scope is CredentialScope.MODEL:
        target = target.lower()
    if not target or len(target) > 256 or _CONTROL.search(target):
        raise CredentialInvalid(f"a {scope.value} credential needs a {scope.value} (1-256 printable characters)")
    return target


def check_credential(kind: LoginKind, account: str, password: str, profile: str) -> None:
    if not account or len(account) > MAX_ACCOUNT or _CONTROL.search(account):
        raise CredentialInvalid(f"the account name must be 1-{MAX_ACCOUNT} printable characters")
    if kind is LoginKind.BASIC and ":" in account:
        raise CredentialInvalid("an HTTP Basic account name cannot contain ':' (RFC 7617)")
    if not password or len(password) > MAX_SECRET or _CONTROL.search(password):
        raise CredentialInvalid(f"the password must be 1-{MAX_SECRET} printable characters")
    if not _PROFILE.fullmatch(profile):
        raise CredentialInvalid("a login profile name is lower-case letters, digits, '-' or '_' (or empty)")


def _aad(customer_id: str, scope: CredentialScope, target: str, version: int) -> bytes:
    return f"printgate-vault:v1|{customer_id}|{scope.value}|{target}|{version}".encode()


class CredentialVault:
    """Device credentials per customer (tenant), sealed with the customer's data key."""

    def __init__(self, db: Database, kms: KeyWrapper, audit: AuditSink, *,
                 clock: Callable[[], datetime] = _now) -> None:
        self._db = db
        self._kms = kms
        self._audit = audit
        self._clock = clock

    async def _data_key(self, customer_id: str, *, create: bool) -> bytes | None:
        context = f"printgate-vault-tenant:{customer_id}".encode()
        async with self._db.session() as s:
            found = await store.wrapped_data_key(s, customer_id)
        if found is None and create:
            key = os.urandom(32)
            wrapped = await self._kms.wrap(key, context)
            try:
                async with self._db.transaction() as s:
                    await store.add_wrapped_data_key(s, customer_id, await self._kms.key_id(), wrapped, self._clock())
                return key
            except IntegrityError:  # made meanwhile by another writer: use theirs
                async with self._db.session() as s:
                    found = await store.wrapped_data_key(s, customer_id)
        if found is None:
            return None
        return await self._kms.unwrap(found[1], context)

    async def set(
        self, *, customer_id: str, dealer_id: str | None, scope: CredentialScope, target: str,
        kind: LoginKind, account: str, password: str, profile: str = "", actor: str | None,
        source_ip: str | None = None,
    ) -> StoredCredential:
        """Store a new version (set or rotate); the secret is never returned nor audited."""
        target = normalise_target(scope, target)
        check_credential(kind, account, password, profile)
        key = await self._data_key(customer_id, create=True)
        assert key is not None
        now = self._clock()
        async with self._db.transaction() as s:
            version = await store.next_version(s, customer_id, scope, target)
            sealed = seal(key, password.encode(), _aad(customer_id, scope, target, version))
            await store.add_credential_version(
                s, customer_id=customer_id, scope=scope, target=target, version=version, kind=kind,
                account=account, profile=profile, sealed=sealed, now=now, by=actor)
        await self._audit.append(AuditEventIn(
            type=event_types.VAULT_CREDENTIAL_ROTATED if version > 1 else event_types.VAULT_CREDENTIAL_SET,
            actor=actor, dealer_id=dealer_id, customer_id=customer_id,
            device_id=target if scope is CredentialScope.DEVICE else None, source_ip=source_ip,
            details={"scope": scope.value, "target": target, "kind": kind.value, "account": account,
                     "profile": profile, "version": version},
        ))
        return StoredCredential(customer_id, scope, target, kind, account, profile, version, now, actor)

    async def erase(
        self, *, customer_id: str, dealer_id: str | None, scope: CredentialScope, target: str,
        actor: str | None, source_ip: str | None = None,
    ) -> int:
        """Erase every version's sealed secret of one scope; the number of versions erased."""
        target = normalise_target(scope, target)
        async with self._db.transaction() as s:
            erased = await store.erase_credential(s, customer_id, scope, target, self._clock())
        await self._audit.append(AuditEventIn(
            type=event_types.VAULT_CREDENTIAL_ERASED, actor=actor, dealer_id=dealer_id, customer_id=customer_id,
            device_id=target if scope is CredentialScope.DEVICE else None, source_ip=source_ip,
            details={"scope": scope.value, "target": target, "versions_erased": erased},
        ))
        return erased

    async def listing(self, customer_id: str) -> list[StoredCredential]:
        async with self._db.session() as s:
            return await store.list_current(s, customer_id)

    async def login_for(self, customer_id: str, device_id: str, model: str | None) -> DeviceLogin | None:
        """The most specific stored credential for a device (device, then model, then customer), in
        clear, for one session's proxy route only."""
        async with self._db.session() as s:
            meta = await store.resolved(s, customer_id, device_id, model)
            found = await store.current_sealed(s, customer_id, meta.scope, meta.target) if meta else None
        if found is None:
            return None
        meta, sealed = found
        key = await self._data_key(customer_id, create=False)
        if key is None:
            return None
        password = unseal(key, sealed, _aad(customer_id, meta.scope, meta.target, meta.version)).decode()
        return DeviceLogin(meta.kind, meta.account, password, meta.profile, meta.version, meta.scope)

    async def forbidden(self, customer_id: str) -> bool:
        async with self._db.session() as s:
            return await store.credentials_forbidden(s, customer_id)

    async def set_forbidden(self, *, customer_id: str, dealer_id: str | None, forbidden: bool,
                            actor: str | None, source_ip: str | None = None) -> None:
        async with self._db.transaction() as s:
            await store.set_credentials_forbidden(s, customer_id, forbidden, self._clock(), actor)
        await self._audit.append(AuditEventIn(
            type=event_types.VAULT_USE_FORBIDDEN if forbidden else event_types.VAULT_USE_ALLOWED, actor=actor,
            dealer_id=dealer_id, customer_id=customer_id, source_ip=source_ip,
            details={"forbidden": forbidden},
        ))
