"""MQTT topic names of the agent channel (one tree per agent, QoS 1).

``printgate/v1/agents/<agent id>/cmd``       cloud -> agent, SignedCommand bytes
``printgate/v1/agents/<agent id>/events``    agent -> cloud, AgentEvent bytes
``printgate/v1/agents/<agent id>/presence``  agent -> cloud, retained "online"/"offline"
                                             ("offline" is the agent's last will)
``printgate/v1/agents/<agent id>/config``    cloud -> agent, retained desired config

The broker ACL lets a client whose certificate CN is ``<agent id>`` read
``cmd``/``config`` and write ``events``/``presence`` of its own tree only.
"""

from __future__ import annotations

from typing import Final

PREFIX: Final = "printgate/v1/agents"
ONLINE: Final = b"online"
OFFLINE: Final = b"offline"
QOS: Final = 1
GATEWAY_USER: Final = "printgate-gateway"

_FORBIDDEN = frozenset("/+#\x00")


def _checked(agent_id: str) -> str:
    if not agent_id or any(ch in _FORBIDDEN for ch in agent_id):
        raise ValueError(f"agent id {agent_id!r} cannot be used in an MQTT topic")
    return agent_id


def command_topic(agent_id: str) -> str:
    return f"{PREFIX}/{_checked(agent_id)}/cmd"


def events_topic(agent_id: str) -> str:
    return f"{PREFIX}/{_checked(agent_id)}/events"


def presence_topic(agent_id: str) -> str:
    return f"{PREFIX}/{_checked(agent_id)}/presence"


def config_topic(agent_id: str) -> str:
    return f"{PREFIX}/{_checked(agent_id)}/config"


ALL_PRESENCE: Final = f"{PREFIX}/+/presence"
ALL_EVENTS: Final = f"{PREFIX}/+/events"


def agent_of(topic: str) -> str | None:
    """The agent id in a topic of the agent tree, or None for any other topic."""
    parts = topic.split("/")
    if len(parts) != 5 or "/".join(parts[:3]) != PREFIX or not parts[3]:
        return None
    return parts[3]


def kind_of(topic: str) -> str | None:
    """'cmd' | 'events' | 'presence' | 'config' for an agent topic, else None."""
    return topic.split("/")[4] if agent_of(topic) is not None else None
