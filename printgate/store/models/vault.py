"""The credential vault's tables: wrapped data keys per tenant, sealed device credentials
(every version), a customer's refusal of stored credentials, and break-glass reveals."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from printgate.store.models.base import Base, UtcDateTime


class VaultDataKeyRow(Base):
    """A tenant's (customer's) data key, wrapped by the master key ``kms_key_id``."""

    __tablename__ = "vault_data_keys"
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    kms_key_id: Mapped[str] = mapped_column(String(128))
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class DeviceCredentialRow(Base):
    """One version of a stored credential; ``sealed`` is NULL once erased."""

    __tablename__ = "device_credentials"
    __table_args__ = (UniqueConstraint("customer_id", "scope", "target", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    scope: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(256))
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    account: Mapped[str] = mapped_column(String(128))
    profile: Mapped[str] = mapped_column(String(64), default="")
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    erased_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class CredentialUseSettingRow(Base):
    """A customer's choice: ``forbidden`` = technicians never use stored credentials on its devices."""

    __tablename__ = "credential_use_settings"
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    forbidden: Mapped[bool] = mapped_column(Boolean, default=False)
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    changed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


class CredentialRevealRow(Base):
    """A break-glass request to see a stored password, bound to a customer approval; revealed once."""

    __tablename__ = "credential_reveals"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    approval_id: Mapped[str] = mapped_column(ForeignKey("dwa_approvals.id"))
    user_id: Mapped[str] = mapped_column(String(64))
    device_id: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revealed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
