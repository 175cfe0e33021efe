"""SNMPv3 against a real net-snmp snmpd configured by the test (SHA-256 / AES-128)."""

from __future__ import annotations

import pytest

from agent.discovery import DiscoveryLimits, discover
from agent.snmp.identity import read_identity
from printgate.domain import DiscoveryStatus, SnmpCredential
from printgate.errors import SnmpError
from tests.snmp.conftest import Snmpd


def _cred(d: Snmpd, *, auth: str | None = None, priv: str | None = None) -> SnmpCredential:
    return SnmpCredential.v3(d.user, auth_protocol="SHA256", auth_key=auth or d.auth_key,
                             priv_protocol="AES128", priv_key=priv or d.priv_key)


async def test_agent_reads_snmpd_with_authpriv(snmpd_v3: Snmpd) -> None:
    ident = await read_identity("127.0.0.1", port=snmpd_v3.port, credentials=[_cred(snmpd_v3)])
    assert ident.location == snmpd_v3.location
    assert ident.sys_object_id is not None and ident.sys_object_id.startswith("1.3.6.1.4.1.8072")
    assert ident.vendor == "net-snmp"


async def test_wrong_auth_key_is_refused_clearly(snmpd_v3: Snmpd) -> None:
    with pytest.raises(SnmpError) as err:
        await read_identity("127.0.0.1", port=snmpd_v3.port,
                            credentials=[_cred(snmpd_v3, auth="not-the-auth-key")], timeout=0.5, retries=0)
    assert err.value.code == "snmp_auth_failed"
    assert "authentication refused" in err.value.message and snmpd_v3.auth_key not in err.value.message


async def test_wrong_privacy_key_reports_no_answer_and_names_the_key(snmpd_v3: Snmpd) -> None:
    # snmpd silently drops what it cannot decrypt: the agent says so instead of hanging
    with pytest.raises(SnmpError) as err:
        await read_identity("127.0.0.1", port=snmpd_v3.port,
                            credentials=[_cred(snmpd_v3, priv="not-the-priv-key")], timeout=0.5, retries=0)
    assert err.value.code == "snmp_timeout"
    assert "privacy key" in err.value.message


async def test_v3_credential_after_a_failing_community_is_used(snmpd_v3: Snmpd) -> None:
    creds = [SnmpCredential.v2c("public"), _cred(snmpd_v3)]
    ident = await read_identity("127.0.0.1", port=snmpd_v3.port, credentials=creds, timeout=0.5, retries=0)
    assert ident.location == snmpd_v3.location


async def test_snmpd_host_is_excluded_as_not_a_printer(snmpd_v3: Snmpd) -> None:
    [r] = await discover(["127.0.0.1"], port=snmpd_v3.port, credentials=[_cred(snmpd_v3)],
                         limits=DiscoveryLimits(timeout=1.0, retries=0))
    assert r.status is DiscoveryStatus.EXCLUDED
    assert "Printer-MIB" in r.reason
    assert r.credential == "v3:pgagent:authPriv"
