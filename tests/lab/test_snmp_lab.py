"""The SNMP lab: every catalogue device answers at its own address; swap works."""
# ruff: noqa: F811  (pytest fixtures imported from tests/snmp/conftest.py)

from __future__ import annotations

import asyncio

from agent.discovery import Change, compare_with_known, discover
from agent.snmp import oids
from agent.snmp.transport import SnmpClient, SnmpTarget
from lab import snmprec
from lab.catalog import LAB_DEVICES
from lab.snmp import SnmpLab, recording_path
from printgate.domain import SnmpCredential
from tests.snmp.conftest import snmp_client, snmp_lab  # noqa: F401  (fixtures)

PUBLIC = SnmpCredential.v2c("public")


async def test_every_catalogue_device_answers_its_own_recording_with_community_public(
    snmp_lab: SnmpLab, snmp_client: SnmpClient
) -> None:
    async def one(ip: str, name: str) -> None:
        got = await snmp_client.get(SnmpTarget(ip, snmp_lab.port, PUBLIC), [oids.SYS_DESCR, oids.SYS_OBJECT_ID])
        data = snmprec.load(recording_path(name))
        assert got[oids.SYS_DESCR].value == data[oids.SYS_DESCR].value, name
        assert got[oids.SYS_OBJECT_ID].value == data[oids.SYS_OBJECT_ID].value, name

    await asyncio.gather(*(one(d.ip, d.name) for d in LAB_DEVICES))
    assert snmp_lab.address_of("epson") == "127.0.20.14"


async def test_swap_makes_a_different_device_answer_on_a_known_address(
    snmp_lab: SnmpLab, snmp_client: SnmpClient
) -> None:
    ip = "127.0.20.43"
    [before] = await discover([ip], port=snmp_lab.port, credentials=[PUBLIC], client=snmp_client)
    assert before.identity is not None and before.identity.serial == "X3B8022793"  # epson
    await snmp_lab.swap(ip, "ricoh_mpc3002")
    try:
        [after] = await discover([ip], port=snmp_lab.port, credentials=[PUBLIC], client=snmp_client)
        assert after.identity is not None and after.identity.serial == "W492KB03439"
        [change] = compare_with_known({ip: before.identity}, [after])
        assert change.change is Change.REPLACED
    finally:
        await snmp_lab.swap(ip, "epson")
