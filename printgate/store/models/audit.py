"""Tables of the hash-chained audit log (audit/ computes, these only persist).

``audit_records`` holds each sealed entry verbatim (``entry``, the RFC 8785
bytes as text) plus queryable projections of its non-personal fields;
``entry`` is NULL for records pruned by retention (``hash``/``prev`` stay so
the chain and the Merkle tree still verify). Clear personal values live in
``audit_personal`` and may be erased. ``audit_head`` is the single chain-head
row every appender locks.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from printgate.store.models.base import Base, UtcDateTime

_BIG = BigInteger().with_variant(Integer, "sqlite")


class AuditRecordRow(Base):
    __tablename__ = "audit_records"
    seq: Mapped[int] = mapped_column(_BIG, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    schema_version: Mapped[int] = mapped_column(Integer, default=1)
    type: Mapped[str] = mapped_column(String(128), index=True)
    outcome: Mapped[str] = mapped_column(String(16), index=True)
    dealer_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    customer_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    device_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    session_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    entry: Mapped[str | None] = mapped_column(Text, nullable=True)
    hash: Mapped[str] = mapped_column(String(64))
    prev: Mapped[str] = mapped_column(String(64))
    pruned_by: Mapped[int | None] = mapped_column(_BIG, nullable=True)


class AuditPersonalRow(Base):
    """Clear personal values of one record: ``fields`` = {name: [value, salt hex]};
    ``actor``/``source_ip`` repeat the two searchable ones (indexed)."""

    __tablename__ = "audit_personal"
    seq: Mapped[int] = mapped_column(_BIG, primary_key=True, autoincrement=False)
    actor: Mapped[str | None] = mapped_column(String(320), nullable=True, index=True)
    source_ip: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    fields: Mapped[dict[str, list[str]]] = mapped_column(JSON, default=dict)


class AuditCheckpointRow(Base):
    __tablename__ = "audit_checkpoints"
    tree_size: Mapped[int] = mapped_column(_BIG, primary_key=True, autoincrement=False)
    root: Mapped[str] = mapped_column(String(64))
    head: Mapped[str] = mapped_column(String(64))
    at: Mapped[str] = mapped_column(String(40))
    key_id: Mapped[str] = mapped_column(String(32))
    signature: Mapped[str] = mapped_column(String(128))
    frontier: Mapped[list[str]] = mapped_column(JSON, default=list)


class AuditHeadRow(Base):
    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(_BIG, default=0)
    hash: Mapped[str] = mapped_column(String(64))


class AuditCosignatureRow(Base):
    """A witness's cosignature of a checkpoint, with the checkpoint as the witness saw it
    (kept whole: the gateway's own checkpoint row could be rewritten)."""

    __tablename__ = "audit_cosignatures"
    witness: Mapped[str] = mapped_column(String(32), primary_key=True)  # witness key id
    tree_size: Mapped[int] = mapped_column(_BIG, primary_key=True, autoincrement=False)
    witness_public_key: Mapped[str] = mapped_column(String(64))  # raw Ed25519, hex
    cosigned_at: Mapped[str] = mapped_column(String(40))
    signature: Mapped[str] = mapped_column(String(128))
    root: Mapped[str] = mapped_column(String(64))
    head: Mapped[str] = mapped_column(String(64))
    checkpoint_at: Mapped[str] = mapped_column(String(40))
    key_id: Mapped[str] = mapped_column(String(32))  # the gateway's checkpoint key
    checkpoint_signature: Mapped[str] = mapped_column(String(128))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
