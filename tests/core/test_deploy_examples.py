"""The shipped configuration examples are valid settings (a typo there would strand an operator)."""

from pathlib import Path

from printgate.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "config"


def test_cloud_example_config_loads_with_production_choices() -> None:
    s = Settings.load(DEPLOY / "printgate.toml")
    assert s.database_url.startswith("postgresql+asyncpg://")
    assert s.gateway.firewall == "nftables"
    assert s.portal.cookie_secure is True
    assert s.gateway.proxy_scheme == "https" and s.gateway.proxy_public_port == 443


def test_agent_example_config_loads() -> None:
    s = Settings.load(DEPLOY / "agent.toml")
    assert s.agent.targets == ["192.0.2.0/24"]
    assert s.agent.ews_candidates == ["443/https", "80/http"]
