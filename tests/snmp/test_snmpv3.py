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


async def test_agent_reads_an_auth_no_priv_user_with_sha512(snmpd_v3: Snmpd) -> None:
    cred = SnmpCredential.v3(f"{snmpd_v3.user}-nopriv", auth_protocol="SHA512", auth_key=snmpd_v3.auth_key,
                             priv_protocol=None)
    assert cred.label == f"v3:{snmpd_v3.user}-nopriv:authNoPriv"
    ident = await read_identity("127.0.0.1", port=snmpd_v3.port, credentials=[cred], timeout=1.0, retries=0)
    assert ident.location == snmpd_v3.location


async def test_an_auth_no_priv_request_to_a_priv_only_user_is_refused_clearly(snmpd_v3: Snmpd) -> None:
    # snmpd answers authorizationError/noAccess: access refused, not "no answer"
    cred = SnmpCredential.v3(snmpd_v3.user, auth_protocol="SHA256", auth_key=snmpd_v3.auth_key, priv_protocol=None)
    with pytest.raises(SnmpError) as err:
        await read_identity("127.0.0.1", port=snmpd_v3.port, credentials=[cred], timeout=0.5, retries=0)
    assert err.value.code == "snmp_auth_failed"
    assert "refused access" in err.value.message


async def test_agent_reads_a_sha512_aes256_user(snmpd_v3: Snmpd) -> None:
    cred = SnmpCredential.v3(f"{snmpd_v3.user}-aes256", auth_protocol="SHA512", auth_key=snmpd_v3.auth_key,
                             priv_protocol="AES256", priv_key=snmpd_v3.priv_key)
    ident = await read_identity("127.0.0.1", port=snmpd_v3.port, credentials=[cred], timeout=1.0, retries=0)
    assert ident.location == snmpd_v3.location


async def test_aes256_with_sha1_uses_net_snmp_key_extension_not_cisco(snmpd_v3: Snmpd) -> None:
    # SHA-1 gives 20 key bytes, AES-256 needs 32: net-snmp extends the key per
    # draft-blumenthal ("AES256"); the Cisco (draft-reeder) variant "AES256C" decrypts garbage
    def cred(priv: str) -> SnmpCredential:
        return SnmpCredential.v3(f"{snmpd_v3.user}-sha1", auth_protocol="SHA", auth_key=snmpd_v3.auth_key,
                                 priv_protocol=priv, priv_key=snmpd_v3.priv_key)

    ident = await read_identity("127.0.0.1", port=snmpd_v3.port, credentials=[cred("AES256")], timeout=1.0, retries=0)
    assert ident.location == snmpd_v3.location
    with pytest.raises(SnmpError) as err:
        await read_identity("127.0.0.1", port=snmpd_v3.port, credentials=[cred("AES256C")], timeout=0.5, retries=0)
    assert err.value.code == "snmp_timeout"


async def test_an_unsupported_v3_protocol_is_a_config_error_naming_the_choices(snmpd_v3: Snmpd) -> None:
    cred = SnmpCredential.v3(snmpd_v3.user, auth_protocol="SHA256", auth_key=snmpd_v3.auth_key,
                             priv_protocol="DES", priv_key=snmpd_v3.priv_key)
    with pytest.raises(SnmpError) as err:
        await read_identity("127.0.0.1", port=snmpd_v3.port, credentials=[cred], timeout=0.5, retries=0)
    assert err.value.code == "snmp_config" and "AES256" in err.value.message
