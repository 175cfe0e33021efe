"""Transfer-budget profiles per vendor (``[[profile]]`` in vendor_endpoints.toml) and the
gateway settings that give the defaults."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.proxy.limits import ProxyLimits
from gateway.proxy.vendor_profiles import load_vendor_endpoints, parse_vendor_endpoints
from printgate.errors import ConfigError
from printgate.settings import GatewaySettings, Settings


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("profile = 3", "array of tables"),
        ("[[profile]]\nnames=['x']", "'vendor' must be"),
        ("[[profile]]\nvendor='x'\nnames=[]", "'names' must be"),
        ("[[profile]]\nvendor='x'\nrequest_budget=-1", "positive number of bytes"),
        ("[[profile]]\nvendor='x'\nrequest_budget='big'", "positive number of bytes"),
        ("[[profile]]\nvendor='x'\nsession_budget=true", "positive number of bytes"),
        ("[[profile]]\nvendor='x'\nmax_page_body=1", "unknown keys"),
    ],
)
def test_bad_profiles_are_refused_at_load(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_vendor_endpoints(text)


def test_a_profile_applies_to_the_vendor_names_it_lists_and_only_to_them():
    table = parse_vendor_endpoints(
        "[[profile]]\nvendor='acme'\nnames=['acme', 'acme printing']\nrequest_budget=1000\nsession_budget=5000\n"
    )
    defaults = ProxyLimits()
    acme = table.limits_for("ACME Printing Systems GmbH", defaults)
    assert (acme.request_budget, acme.session_budget) == (1000, 5000)
    assert acme.max_form_body == defaults.max_form_body  # untouched keys keep the default
    assert table.limits_for("Brother Industries", defaults) is defaults
    assert table.limits_for("", defaults) is defaults


def test_shipped_profiles_load():
    table = load_vendor_endpoints()
    assert {p.vendor for p in table.profiles} >= {"hp", "ricoh", "cups"}
    assert table.limits_for("Hewlett-Packard", ProxyLimits()).request_budget == 64 * 1024


def test_gateway_settings_give_the_budget_defaults():
    settings = Settings()
    assert settings.gateway.dwa_request_budget_bytes == ProxyLimits().request_budget
    assert settings.gateway.dwa_session_budget_bytes == ProxyLimits().session_budget
    tuned = Settings(gateway=GatewaySettings(dwa_request_budget_bytes=4096, dwa_session_budget_bytes=65536))
    assert tuned.gateway.dwa_request_budget_bytes == 4096
    with pytest.raises(ValidationError):
        GatewaySettings(dwa_request_budget_bytes=0)
