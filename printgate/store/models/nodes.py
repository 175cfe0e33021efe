"""Scale-out (issue 18, docs/scale-out.md): the gateway nodes sharing this database, with leases,
and which node holds each agent's command stream. A session's owning node is
``dwa_sessions.node_id`` (core)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
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
    key_ids: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON: key use -> id (0027)


class AgentStreamRow(Base):
    """The node holding an agent's command stream now (gRPC or MQTT); no row: the agent is offline
    everywhere. Removed when the stream ends, the node stops or its lease expires."""

    __tablename__ = "agent_streams"
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id"), primary_key=True)
    node_id: Mapped[str] = mapped_column(ForeignKey("gateway_nodes.id"), index=True)
    since: Mapped[datetime] = mapped_column(UtcDateTime)


class NodeCommandRow(Base):
    """A command one node asks another to run (issue 18, docs/scale-out.md "Cross-node commands"):
    ``pending`` → ``claimed`` (exactly one claimer: a conditional update) → ``done``/``failed``, or
    ``expired`` when the requester stopped waiting before anyone claimed it. ``batch_id``: one of a
    fan-out (one notification per node for the whole batch)."""

    __tablename__ = "node_commands"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    batch_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    target_node: Mapped[str] = mapped_column(String(128))
    from_node: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(64))
    agent_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    payload: Mapped[str] = mapped_column(Text)  # JSON
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    deadline: Mapped[datetime] = mapped_column(UtcDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    result: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON
    error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        Index("ix_node_commands_target_state", "target_node", "state"),
        Index("ix_node_commands_from_state", "from_node", "state"),
    )
