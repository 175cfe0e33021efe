"""The agent's own settings loader (no pydantic, issue 17 item 6): same file, same environment,
same verdicts as the cloud's ``Settings``, and errors that name every bad value."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict
from pathlib import Path

import pytest
from pydantic import ValidationError

from printgate.agent_settings import CLOUD_KEYS, AgentSettings, load_agent_config
from printgate.errors import ConfigError
from printgate.settings import Settings

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "config"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_defaults_are_the_cloud_settings_defaults() -> None:
    assert asdict(load_agent_config(None, environ={}).agent) == asdict(Settings().agent)
    config = load_agent_config(None, environ={})
    assert (config.log_level, config.log_json) == ("info", True)


def test_cloud_keys_are_the_cloud_settings_sections() -> None:
    assert set(Settings.model_fields) - {"log_level", "log_json", "agent"} == CLOUD_KEYS


def test_shipped_example_loads_as_the_cloud_loads_it() -> None:
    config = load_agent_config(DEPLOY / "agent.toml", environ={})
    assert asdict(config.agent) == asdict(Settings.load(DEPLOY / "agent.toml").agent)
    assert config.agent.targets == ["192.0.2.0/24"]


def test_toml_values_are_typed_and_environment_wins(tmp_path: Path) -> None:
    path = write(tmp_path, 'log_level = "debug"\n[portal]\nport = 9000\n[agent]\n'
                           'targets = ["10.0.0.0/24"]\nsnmp_timeout = 2\nmetrics_port = 9101\n'
                           'data_dir = "/var/lib/printgate-agent"\n')
    env = {"PRINTGATE_AGENT__SNMP_PORT": "1161", "printgate_agent__exclude": '["10.0.0.9"]',
           "PRINTGATE_LOG_JSON": "false", "PRINTGATE_AGENT__NEW_DEVICE_WATCH_SECONDS": "",
           "PRINTGATE_PORTAL__PORT": "not read by the agent"}
    config = load_agent_config(path, environ=env)
    agent = config.agent
    assert agent.targets == ["10.0.0.0/24"] and agent.exclude == ["10.0.0.9"]
    assert agent.snmp_timeout == 2.0 and isinstance(agent.snmp_timeout, float)
    assert agent.snmp_port == 1161 and agent.metrics_port == 9101
    assert agent.new_device_watch_seconds is None
    assert agent.data_dir == Path("/var/lib/printgate-agent")
    assert (config.log_level, config.log_json) == ("debug", False)


def test_a_whole_section_from_the_environment(tmp_path: Path) -> None:
    config = load_agent_config(None, environ={"PRINTGATE_AGENT": '{"targets": ["192.0.2.7"], "snmp_retries": 3}'})
    assert config.agent.targets == ["192.0.2.7"] and config.agent.snmp_retries == 3


def test_every_bad_value_is_named_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, '[agent]\nsnmp_timeout = "soon"\nqueue_max_bytes = 0\ntargets = "10.0.0.1"\n'
                           'snmp_port = true\ntarget = ["typo"]\nnew_device_watch_seconds = -1\n')
    with pytest.raises(ConfigError) as caught:
        load_agent_config(path, environ={"PRINTGATE_AGENT__SNMP_RETRIES": "two"})
    message = caught.value.message
    assert str(path) in message
    for expected in ("agent.snmp_timeout: Input should be a valid number (got 'soon')",
                     "agent.queue_max_bytes: Input should be greater than 0 (got 0)",
                     "agent.targets: Input should be a valid list (got '10.0.0.1')",
                     "agent.snmp_port: Input should be a valid integer (got True)",
                     "agent.target: Unexpected keyword argument",
                     "agent.new_device_watch_seconds: Input should be greater than 0 (got -1)",
                     "agent.snmp_retries: Input should be a valid integer (got 'two')"):
        assert expected in message


@pytest.mark.parametrize("text", [
    "[agent]\nqueue_max_readings = 0\n",
    "[agent]\nstop_deadline_seconds = -2.5\n",
    "[agent]\ncommunities = [1, 2]\n",
    "[agent]\nmetrics_port = \"nine\"\n",
    "[agent]\nunknown = 1\n",
    "unknown_top = 1\n",
    "log_json = \"maybe\"\n",
])
def test_refused_as_the_cloud_settings_refuse_it(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ValidationError):
        Settings.load(path)
    with pytest.raises(ConfigError, match="invalid agent settings"):
        load_agent_config(path, environ={})


def test_unknown_environment_names_and_bad_json_are_refused() -> None:
    with pytest.raises(ConfigError, match="PRINTGATE_AGENT__TARGET: Unexpected keyword argument"):
        load_agent_config(None, environ={"PRINTGATE_AGENT__TARGET": '["10.0.0.1"]'})
    with pytest.raises(ConfigError, match=r"agent.targets: Input should be a valid list \(JSON"):
        load_agent_config(None, environ={"PRINTGATE_AGENT__TARGETS": "10.0.0.1"})
    with pytest.raises(ConfigError, match="PRINTGATE_AGENT: Input should be a JSON object"):
        load_agent_config(None, environ={"PRINTGATE_AGENT": "[1]"})


def test_missing_or_broken_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_agent_config(tmp_path / "nope.toml", environ={})
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_agent_config(write(tmp_path, "[agent\n"), environ={})
    with pytest.raises(ConfigError, match="agent: Input should be a valid dictionary"):
        load_agent_config(write(tmp_path, "agent = 3\n"), environ={})


def test_built_directly_it_is_checked_too() -> None:
    with pytest.raises(ConfigError, match=r"agent\.queue_max_bytes: Input should be greater than 0"):
        AgentSettings(queue_max_bytes=0)
    assert AgentSettings(snmp_timeout=3).snmp_timeout == 3.0  # type: ignore[arg-type]
    # the cloud's flavour is the same class: the agent's assembly takes either
    assert isinstance(Settings().agent, AgentSettings)
    assert {f.name for f in dataclasses.fields(Settings().agent)} == {f.name for f in dataclasses.fields(AgentSettings)}


def test_to_config_round_trips_through_a_file(tmp_path: Path) -> None:
    settings = AgentSettings(targets=["10.0.0.0/24"], data_dir=Path("/var/lib/a"), metrics_port=None, snmp_port=1161)
    lines = ["[agent]"] + [f"{k} = {json.dumps(v)}" for k, v in settings.to_config().items()]
    loaded = load_agent_config(write(tmp_path, "\n".join(lines) + "\n"), environ={}).agent
    assert loaded == settings and "metrics_port" not in settings.to_config()
