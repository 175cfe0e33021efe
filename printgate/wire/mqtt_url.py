"""The MQTT broker address of the agent channel: ``mqtts://host[:8883]`` or ``wss://host[:443][/path]``.

One string in the gateway's settings (``channel.mqtt_url``) and in an agent's
enrolment answer; TLS only (the broker authenticates agents by certificate).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from printgate.errors import ConfigError

_DEFAULT_PORTS = {"mqtts": 8883, "wss": 443}


@dataclass(frozen=True, slots=True)
class MqttEndpoint:
    host: str
    port: int
    transport: Literal["tcp", "websockets"]
    path: str = "/mqtt"


def parse_mqtt_url(url: str) -> MqttEndpoint:
    parts = urlsplit(url.strip())
    if parts.scheme not in _DEFAULT_PORTS:
        raise ConfigError(f"MQTT url {url!r} must start with mqtts:// or wss:// (the agent channel is TLS only)")
    try:
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
    except ValueError as exc:
        raise ConfigError(f"MQTT url {url!r} has an invalid port") from exc
    if not parts.hostname:
        raise ConfigError(f"MQTT url {url!r} names no host")
    if parts.username or parts.password:
        raise ConfigError(f"MQTT url {url!r} must not carry credentials: the broker checks client certificates")
    if parts.scheme == "wss":
        return MqttEndpoint(parts.hostname, port, "websockets", parts.path or "/mqtt")
    return MqttEndpoint(parts.hostname, port, "tcp")
