"""The on-site agent's settings, loaded without pydantic (issue 17 item 6: agent <= 60 MB RSS).

``printgate agent run`` reads the same TOML file and the same ``PRINTGATE_*`` environment as
every printgate process (``printgate.settings``), but pydantic + pydantic-settings cost ~25 MB
of RSS the agent on a Raspberry Pi cannot spare. ``AgentSettings`` is a plain dataclass whose
constraints are ``annotated_types`` markers: the cloud's ``Settings.agent`` (pydantic) validates
it from the same annotations, and ``load_agent_config`` here checks them itself, with the same
wording as pydantic's messages.

Precedence as in ``Settings.load``: environment > TOML file > defaults. Environment names:
``PRINTGATE_LOG_LEVEL``, ``PRINTGATE_LOG_JSON``, ``PRINTGATE_AGENT__<FIELD>`` (lists as JSON,
e.g. ``PRINTGATE_AGENT__TARGETS='["10.0.0.0/24"]'``) or a whole ``PRINTGATE_AGENT`` JSON object.
The cloud's sections of a shared file ([portal], [gateway], ...) are not the agent's: they are
accepted and not read here; any other unknown key is refused, as ``Settings`` refuses it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from annotated_types import Ge, Gt, Le

from printgate.errors import ConfigError

ENV_PREFIX = "PRINTGATE_"
# top-level keys of printgate.settings.Settings that belong to the cloud (tests/unit/printgate/
# test_agent_settings.py keeps this list equal to Settings' fields)
CLOUD_KEYS = frozenset({"database_url", "database_start_wait_seconds", "portal", "gateway", "channel", "integrations", "security_alerts"})
_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}


def _default_communities() -> list[str]:
    return ["public"]


def _default_ews_candidates() -> list[str]:
    return ["443/https", "80/http"]


@dataclass
class AgentSettings:
    """The on-site agent's own settings (it ships alone)."""

    agent_id: str = ""
    cloud_grpc: str = "127.0.0.1:8443"
    relay: str = "127.0.0.1:8422"
    data_dir: Path = Path("var/agent")
    targets: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    communities: list[str] = field(default_factory=_default_communities)
    snmp_port: int = 161
    snmp_timeout: float = 1.0
    snmp_retries: int = 1
    max_in_flight: int = 64
    packets_per_second: int = 500
    http_proxy: str | None = None
    tunnel_keepalive_seconds: float = 10.0  # a silently lost relay connection is noticed after ~3x this
    verify_cache_seconds: float = 30.0  # a device identity check is reused this long (max 30 s)
    # where to look for a printer's web server, in order: "port/scheme"
    ews_candidates: list[str] = field(default_factory=_default_ews_candidates)
    scan_interval_seconds: float = 300.0
    # between sweeps, a discovery-only look this often; a new printer brings the full sweep at once
    new_device_watch_seconds: Annotated[float | None, Gt(0)] = 60.0
    counters_interval_seconds: float = 3600.0
    supplies_interval_seconds: float = 300.0
    alerts_interval_seconds: float = 300.0
    upload_interval_seconds: float = 10.0
    # store-and-forward bounds: past either, the oldest unsent readings are dropped (counted, reported)
    queue_max_readings: Annotated[int, Gt(0)] = 200_000
    queue_max_bytes: Annotated[int, Gt(0)] = 100_000_000
    stop_deadline_seconds: Annotated[float, Gt(0)] = 10.0  # SIGTERM: stop within this, cloud or not
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None  # a local Prometheus endpoint when set

    def to_config(self) -> dict[str, Any]:
        """The values as an agent.toml ``[agent]`` table holds them (paths as text, unset left out)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = str(value) if isinstance(value, Path) else (list(value) if isinstance(value, list) else value)
        return out

    def __post_init__(self) -> None:
        """Checked however it is built (the demo and tests construct it directly)."""
        problems: list[str] = []
        for name, value in _coerce_fields(vars(self), "agent", problems).items():
            setattr(self, name, value)
        if problems:
            raise ConfigError("invalid agent settings: " + "; ".join(problems))


@dataclass(frozen=True)
class AgentConfig:
    """What ``printgate agent run`` reads: the log set-up and the [agent] section."""

    agent: AgentSettings
    log_level: str = "info"
    log_json: bool = True


def load_agent_config(toml_file: Path | None = None, environ: Mapping[str, str] | None = None) -> AgentConfig:
    """Environment > TOML file > defaults; a ``ConfigError`` naming every bad value."""
    env = {k.upper(): v for k, v in (os.environ if environ is None else environ).items()}
    data: dict[str, Any] = {}
    if toml_file is not None:
        path = Path(toml_file)
        if not path.is_file():
            raise ConfigError(f"configuration file {toml_file} does not exist")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"configuration file {toml_file} is not valid TOML: {exc}") from None
    problems: list[str] = []
    for key in data:
        if key not in CLOUD_KEYS | {"log_level", "log_json", "agent"}:
            problems.append(f"{key}: Extra inputs are not permitted")
    section = data.get("agent", {})
    if not isinstance(section, dict):
        problems.append("agent: Input should be a valid dictionary")
        section = {}
    raw: dict[str, Any] = dict(section)
    top: dict[str, Any] = {k: data[k] for k in ("log_level", "log_json") if k in data}
    if (whole := env.get(ENV_PREFIX + "AGENT")) is not None:
        try:
            parsed = json.loads(whole)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            raw.update(parsed)
        else:
            problems.append(f"{ENV_PREFIX}AGENT: Input should be a JSON object")
    names = {f.name for f in dataclasses.fields(AgentSettings)}
    for key, value in env.items():
        if key.startswith(ENV_PREFIX + "AGENT__"):
            name = key.removeprefix(ENV_PREFIX + "AGENT__").lower()
            if name not in names:
                problems.append(f"{key}: Unexpected keyword argument")
            else:
                raw[name] = _EnvText(value)
    for name in ("log_level", "log_json"):
        if (text := env.get(ENV_PREFIX + name.upper())) is not None:
            top[name] = _EnvText(text)
    for key in raw:
        if key not in names:
            problems.append(f"agent.{key}: Unexpected keyword argument")
    checked = _coerce_fields({k: v for k, v in raw.items() if k in names}, "agent", problems)
    log = _coerce(top, {"log_level": str, "log_json": bool}, "", problems)
    if problems:
        raise ConfigError(f"invalid agent settings{f' in {toml_file}' if toml_file else ''}: " + "; ".join(problems))
    return AgentConfig(agent=AgentSettings(**checked), **log)


class _EnvText(str):
    """A value from the environment: text that may stand for a number, a boolean or JSON."""


def _coerce_fields(values: Mapping[str, Any], where: str, problems: list[str]) -> dict[str, Any]:
    hints = typing.get_type_hints(AgentSettings, include_extras=True)
    return _coerce(values, hints, where, problems)


def _coerce(values: Mapping[str, Any], hints: Mapping[str, Any], where: str, problems: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in values.items():
        loc = f"{where}.{name}" if where else name
        try:
            out[name] = _value(hints[name], value)
        except _Invalid as exc:
            problems.append(f"{loc}: {exc} (got {_shown(value)})")
    return out


class _Invalid(ValueError):
    pass


def _shown(value: Any) -> str:
    text = repr(str(value) if isinstance(value, _EnvText) else value)
    return text if len(text) <= 60 else text[:57] + "..."


def _value(hint: Any, value: Any) -> Any:
    constraints: tuple[Any, ...] = ()
    if typing.get_origin(hint) is Annotated:
        hint, *extra = typing.get_args(hint)
        constraints = tuple(extra)
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) and type(None) in args:  # X | None
        if value is None or (isinstance(value, _EnvText) and value.strip().lower() in ("", "null", "none")):
            return None
        (hint,) = [a for a in args if a is not type(None)]
    result = _scalar_or_list(hint, value)
    for c in constraints:
        if isinstance(c, Gt) and not result > c.gt:
            raise _Invalid(f"Input should be greater than {c.gt}")
        if isinstance(c, Ge) and not result >= c.ge:
            raise _Invalid(f"Input should be greater than or equal to {c.ge}")
        if isinstance(c, Le) and not result <= c.le:
            raise _Invalid(f"Input should be less than or equal to {c.le}")
    return result


def _scalar_or_list(hint: Any, value: Any) -> Any:
    if typing.get_origin(hint) is list:
        if isinstance(value, _EnvText):
            try:
                value = json.loads(value)
            except ValueError:
                raise _Invalid("Input should be a valid list (JSON in the environment)") from None
        if not isinstance(value, list | tuple):
            raise _Invalid("Input should be a valid list")
        (item,) = typing.get_args(hint)
        return [_scalar_or_list(item, _EnvText(v) if isinstance(v, str) and item is not str else v) for v in value]
    if hint is str:
        if not isinstance(value, str):
            raise _Invalid("Input should be a valid string")
        return str(value)
    if hint is Path:
        if not isinstance(value, str | Path):
            raise _Invalid("Input should be a valid path")
        return Path(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise _Invalid("Input should be a valid boolean")
    if hint is int:
        if isinstance(value, bool):  # TOML true is not a port number
            raise _Invalid("Input should be a valid integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise _Invalid("Input should be a valid integer")
    if hint is float:
        if isinstance(value, bool):
            raise _Invalid("Input should be a valid number")
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                pass
            else:
                if number == number and number not in (float("inf"), float("-inf")):
                    return number
        raise _Invalid("Input should be a valid number")
    raise _Invalid(f"unsupported setting type {hint!r}")  # pragma: no cover - a new field's type
