"""Discovery on recordings mutated in the test: one bad or missing object never loses a printer.

Each case copies a real recording, changes it the way real agents deviate
(a Host-Resources value the agent cannot encode, missing sysName/sysLocation,
SNMPv1 agents that fail a whole PDU for one missing object, a Printer-MIB
object that cannot be sent), and serves the copy with snmpsim. The pristine
recording is the ground truth for what discovery must still find.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from agent.discovery import DiscoveryLimits, discover
from agent.snmp import oids
from agent.snmp.transport import SnmpClient, SnmpTarget
from lab.snmp import SnmpLab, recording_path
from printgate.domain import DiscoveryResult, DiscoveryStatus, SnmpCredential

V2C = SnmpCredential.v2c("public")
V1 = SnmpCredential.v1("public")
UNENCODABLE = "6|0"  # an OBJECT IDENTIFIER with one arc: snmpsim cannot send it, the request fails

Mutation = Callable[[list[str]], list[str]]


def set_value(prefix: str, value: str) -> Mutation:
    """Every object under ``prefix`` gets ``value`` ("tag|value")."""
    return lambda lines: [
        f"{line.split('|', 1)[0]}|{value}" if oids.is_under(line.split("|", 1)[0], prefix) else line
        for line in lines
    ]


def drop(*prefixes: str) -> Mutation:
    return lambda lines: [line for line in lines if not any(oids.is_under(line.split("|", 1)[0], p) for p in prefixes)]


def add(*lines_: str) -> Mutation:
    return lambda lines: sorted([*lines, *lines_], key=lambda line: oids.oid_tuple(line.split("|", 1)[0]))


def both(*mutations: Mutation) -> Mutation:
    def run(lines: list[str]) -> list[str]:
        for m in mutations:
            lines = m(lines)
        return lines
    return run


HR_DEVICE_ID = "1.3.6.1.2.1.25.3.2.1.4"
HP_DEVICE_ID = "1.3.6.1.4.1.11.2.3.9.1.1.7.0"
GEN_ERR = "{tag}:error|op=any,status=genError"  # snmpsim's error variation: the request answers genErr
IF_MTU = "1.3.6.1.2.1.2.2.1.4"

CASES: dict[str, tuple[str, Mutation]] = {
    # the case: hrDeviceID 0.0 -> 0 (the identity GETBULK runs into it)
    "127.0.21.11": ("brother_hl5370dw", set_value(HR_DEVICE_ID, UNENCODABLE)),
    # a vendor without sysName/sysLocation
    "127.0.21.12": ("epson", drop(oids.SYS_NAME, oids.SYS_LOCATION)),
    # the serial only in the vendor's MIB, next to HP's device-ID object it lacks
    "127.0.21.13": ("ricoh_mpc3002", drop(oids.PRT_GENERAL_SERIAL)),
    # a label-printer-like agent: values in the IF-MIB it cannot encode
    "127.0.21.14": ("jetdirect_m130nw", set_value(IF_MTU, UNENCODABLE)),
    # the first Printer-MIB object cannot be sent: GETNEXT of the MIB root fails
    "127.0.21.15": ("ricoh_mpc3002", set_value("1.3.6.1.2.1.43.5", UNENCODABLE)),
    # a non-printer whose object after the Printer-MIB cannot be sent: nothing can classify it
    "127.0.21.16": ("linux", add("1.3.6.1.2.1.88.1.1.1.0|6|0")),
    # everything at once on an HP without sysName/sysLocation
    "127.0.21.17": ("jetdirect_m880", both(drop(oids.SYS_NAME, oids.SYS_LOCATION), set_value(HR_DEVICE_ID, UNENCODABLE))),
    # an agent that answers genErr for a Host-Resources object (a v2c error, not silence)
    "127.0.21.18": ("brother_hl5370dw", set_value(HR_DEVICE_ID, GEN_ERR.format(tag=6))),
    # an agent that answers genErr for HP's device-ID object: the vendor serial next to it is still read
    "127.0.21.19": ("ricoh_mpc3002", both(drop(oids.PRT_GENERAL_SERIAL),
                                          add(f"{HP_DEVICE_ID}|{GEN_ERR.format(tag=4)}"))),
}


def mutated(name: str, mutation: Mutation, into: Path) -> Path:
    lines = [line for line in recording_path(name).read_text(errors="replace").splitlines() if line]
    changed = mutation(lines)
    assert changed != lines, f"the mutation of {name} changed nothing"
    out = into / f"mutated-{len(list(into.iterdir()))}-{name}.snmprec"
    out.write_text("\n".join(changed) + "\n")
    return out


@pytest.fixture(scope="module")
async def lab(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SnmpLab]:
    work = tmp_path_factory.mktemp("mutated")
    devices = {ip: str(mutated(name, m, work)) for ip, (name, m) in CASES.items()}
    # the pristine originals, for ground truth through the same code
    devices |= {f"127.0.22.{ip.rsplit('.', 1)[1]}": name for ip, (name, _) in CASES.items()}
    async with SnmpLab(devices) as running:
        yield running


async def sweep(lab: SnmpLab, ips: list[str], cred: SnmpCredential) -> dict[str, DiscoveryResult]:
    results = await discover(ips, port=lab.port, credentials=[cred],
                             limits=DiscoveryLimits(timeout=1.0, retries=0))
    return {r.ip: r for r in results}


def pristine(ip: str) -> str:
    return f"127.0.22.{ip.rsplit('.', 1)[1]}"


PRINTER_CASES = [ip for ip, (name, _) in CASES.items() if name != "linux"]


@pytest.mark.parametrize("cred", [V2C, V1], ids=["v2c", "v1"])
async def test_mutated_printers_are_found_with_the_identity_of_the_pristine_recording(
    lab: SnmpLab, cred: SnmpCredential
) -> None:
    found = await sweep(lab, PRINTER_CASES + [pristine(ip) for ip in PRINTER_CASES], cred)
    for ip in PRINTER_CASES:
        r, truth = found[ip], found[pristine(ip)]
        assert truth.status is DiscoveryStatus.PRINTER, truth
        assert r.status is DiscoveryStatus.PRINTER, (CASES[ip][0], r.reason)
        assert r.identity is not None and truth.identity is not None
        assert r.identity.mac, (CASES[ip][0], r.identity)
        assert (r.identity.mac, r.identity.model, r.identity.vendor) == (
            truth.identity.mac, truth.identity.model, truth.identity.vendor
        ), CASES[ip][0]
        assert r.identity.serial == truth.identity.serial, CASES[ip][0]


@pytest.mark.parametrize("cred", [V2C, V1], ids=["v2c", "v1"])
async def test_a_serial_only_in_the_vendor_mib_is_read_though_hp_device_id_is_missing(
    lab: SnmpLab, cred: SnmpCredential
) -> None:
    # Brother and (mutated) Ricoh have their serial only in the vendor MIB, no HP device-ID object
    found = await sweep(lab, ["127.0.21.13", pristine("127.0.21.11")], cred)
    assert found["127.0.21.13"].identity is not None and found["127.0.21.13"].identity.serial == "W492KB03439"
    brother = found[pristine("127.0.21.11")].identity
    assert brother is not None and brother.serial == "B9J154306"


async def test_a_v1_agent_without_sys_name_is_not_called_one_without_a_system_group(lab: SnmpLab) -> None:
    r = (await sweep(lab, ["127.0.21.12"], V1))["127.0.21.12"]
    assert r.status is DiscoveryStatus.PRINTER, r.reason
    assert r.identity is not None and r.identity.sys_name is None and r.identity.location is None
    assert r.identity.model == "EPSON WF-C5790BA"


async def test_a_v1_get_with_one_missing_object_keeps_the_others(lab: SnmpLab) -> None:
    async with SnmpClient(timeout=0.5, retries=0) as client:
        got = await client.get(SnmpTarget("127.0.21.12", lab.port, V1), oids.SYSTEM_SCALARS)
    assert got[oids.SYS_NAME].absent and got[oids.SYS_LOCATION].absent
    assert got[oids.SYS_DESCR].as_text().startswith("EPSON")
    assert got[oids.SYS_OBJECT_ID].as_oid().startswith("1.3.6.1.4.1.1248")


async def test_an_unclassifiable_device_says_which_request_failed_and_how(lab: SnmpLab) -> None:
    r = (await sweep(lab, ["127.0.21.16"], V2C))["127.0.21.16"]
    assert r.status is DiscoveryStatus.EXCLUDED
    assert "GETNEXT 1.3.6.1.2.1.43:" in r.reason and "no SNMP answer" in r.reason
    assert "every Printer-MIB request failed" in r.reason
    assert r.reason.count("GETNEXT") == 5  # the root, then each main table


async def test_a_walk_keeps_the_rows_before_an_object_the_agent_cannot_send(lab: SnmpLab) -> None:
    failures: list[str] = []
    async with SnmpClient(timeout=1.0, retries=1) as client:
        rows = await client.walk(SnmpTarget("127.0.21.11", lab.port, V2C),
                                 [oids.HR_DEVICE_TYPE, oids.HR_DEVICE_DESCR], failures=failures)
        with pytest.raises(Exception, match="no SNMP answer"):
            await client.walk(SnmpTarget("127.0.21.11", lab.port, V2C), [oids.HR_DEVICE_DESCR])
    descr = {o: v.as_text() for o, v in rows.items() if oids.is_under(o, oids.HR_DEVICE_DESCR)}
    assert "Brother HL-5370DW series" in descr.values()
    assert any(oids.is_under(o, oids.HR_DEVICE_TYPE) for o in rows)
    assert failures and all("GETNEXT after" in f for f in failures), failures
