"""Unit tests mirror the package tree: every pure module has ``tests/unit/<its path>/test_<name>.py``.

Pure modules (no I/O of their own, testable on hand-made inputs): the policy,
the audit hash chain, Merkle tree and canonical form, every proxy addon,
SNMP parsing, the proxy's sniffers, encoded-payload detectors, URL rewriter and route table,
and the relay's admission control. A new module in one of these places needs its unit test module.
Integration and end-to-end suites stay grouped by feature elsewhere in ``tests/``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "tests" / "unit"
NOT_LOGIC = {"__init__.py", "errors.py"}
ACROSS_MODULES = {
    "test_properties.py",  # property-based tests over a whole package (policy)
    "test_drain_banner.py",  # a drain across routes, the workers' control channel and the banner (gateway)
}


def pure_modules() -> list[Path]:
    found = [p for p in (ROOT / "policy").glob("*.py") if p.name not in NOT_LOGIC]
    found += [p for p in (ROOT / "gateway" / "proxy" / "addons").glob("*.py") if p.name not in NOT_LOGIC]
    found += [ROOT / "audit" / f"{name}.py" for name in ("chain", "merkle", "canonical")]
    found += [ROOT / "agent" / "snmp" / f"{name}.py" for name in ("parsing", "ber", "values")]
    found += [ROOT / "alerting" / f"{name}.py" for name in ("rules", "engine", "cef")]
    found += [ROOT / "fleet" / f"{name}.py" for name in ("decode", "state")]
    found += [ROOT / "gateway" / "relay" / "policy.py", ROOT / "portal" / "fleet" / "forecast.py",
              ROOT / "printgate" / "wire" / "commands.py", ROOT / "gateway" / "channel" / "validation.py",
              ROOT / "gateway" / "relay" / "admission.py"]
    found += [ROOT / "gateway" / "proxy" / f"{name}.py" for name in ("routes", "rewriter", "sniff", "encoded")]
    return sorted(found)


def unit_test_of(module: Path) -> Path:
    rel = module.relative_to(ROOT)
    return UNIT / rel.parent / f"test_{rel.name}"


@pytest.mark.parametrize("module", pure_modules(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_pure_module_has_a_unit_test_module(module: Path) -> None:
    assert module.is_file()
    assert unit_test_of(module).is_file(), f"add {unit_test_of(module).relative_to(ROOT)}"


def test_the_unit_tree_has_no_test_module_without_its_source() -> None:
    orphans = [t for t in UNIT.rglob("test_*.py") if t.parent != UNIT
               and not (ROOT / t.parent.relative_to(UNIT) / t.name.removeprefix("test_")).is_file()
               and t.name not in ACROSS_MODULES]
    assert not orphans, [o.relative_to(ROOT).as_posix() for o in orphans]
