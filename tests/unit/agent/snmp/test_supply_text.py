"""Supply names decoded from what printers send (``agent.snmp.supply_text``), on the real recordings."""

from __future__ import annotations

from agent.snmp.parsing import supplies_from
from agent.snmp.supply_text import supply_description
from lab import snmprec
from lab.snmp import recording_path


def _supply_names(recording: str) -> list[str]:
    supplies, errors = supplies_from(snmprec.load(recording_path(recording)))
    assert errors == []
    return [s.description or "" for s in supplies]


def test_the_m880_names_its_supplies_without_a_placeholder_part_number() -> None:
    names = _supply_names("jetdirect_m880")
    # the recording sends "Clean Rollers HP\\n20 4E 6F 6E 65 00": HP's part number slot holds "None"
    assert "Clean Rollers" in names
    assert not [n for n in names if "None" in n]
    # real part numbers stay, wrapped hex continuation and all
    assert "Black Cartridge 827A HP CF300A" in names
    assert "Fuser Kit HP 110V-C1N54A, 220V-C1N58A" in names
    assert "Transfer Kit HP D7H14A" in names


def test_placeholders_go_only_at_the_end_and_never_empty_a_name() -> None:
    assert supply_description(b"Waste Toner HP N/A") == "Waste Toner"
    assert supply_description(b"Fuser (null)") == "Fuser"
    assert supply_description(b"None") == "None"  # nothing else to show: kept
    assert supply_description(b"Nonesuch Toner") == "Nonesuch Toner"
    assert supply_description(b"Toner None Black") == "Toner None Black"
