"""Scale-out (issue 18, docs/scale-out.md): the gateway nodes sharing this database, with leases,
and which node holds each agent's command stream. A session's owning node is
``dwa_sessions.node_id`` (core)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from printgate.store.models.base import Base, UtcDateTime


class GatewayNodeRow(Base):
    """One ``printgate serve`` process (by node id). ``state``: active, draining (SIGTERM: no new
    sessions), stopped (ended cleanly) or expired (its lease ran out and ``taken_over_by`` ended its
    sessions). A node is live while ``lease_expires_at`` is in the future."""

    __tablename__ = "gateway_nodes"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    incarnation: Mapped[str] = mapped_column(String(32))  # random per process start
    relay_address: Mapped[str] = mapped_column(String(255))
    proxy_address: Mapped[str] = mapped_column(String(255))
    channel_address: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    renewed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    lease_expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    stopped_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    taken_over_by: Mapped[str | None] = mapped_column(String(128), nullable=True)


class AgentStreamRow(Base):
    """The node holding an agent's command stream now (gRPC or MQTT); no row: the agent is offline
    everywhere. Removed when the stream ends, the node stops or its lease expires."""

    __tablename__ = "agent_streams"
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id"), primary_key=True)
    node_id: Mapped[str] = mapped_column(ForeignKey("gateway_nodes.id"), index=True)
    since: Mapped[datetime] = mapped_column(UtcDateTime)
