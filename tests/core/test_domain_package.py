"""``printgate.domain`` is a package of bounded contexts; the names it had as one module still import."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import printgate.domain

# Every public name of printgate/domain.py before it became a package (issue 16).
NAMES_BEFORE_THE_SPLIT = (
    "Agent AgentCertificate AgentId AuditEventIn AuditRecord CounterValue CurrentSupply Customer CustomerId "
    "DWA_TRANSITIONS Dealer DealerId Decision Device DeviceAlert DeviceId DeviceIdentity DiscoveryResult "
    "DiscoveryStatus DwaSession DwaState DwaTarget DwaTransition FleetDevice Obligations Outcome PrinterAlert "
    "PrinterStatus Reading ReadingKind Reason RemoteAccessMode Role SessionId Site SiteId SnmpCredential "
    "SnmpVersion SupplyLevel SupplyState User UserId enterprise_of normalised_field normalised_model numbered"
).split()
CONTEXTS = ("ids", "tenancy", "devices", "dwa", "decisions", "audit", "channel", "monitoring", "fleet")
PACKAGE = Path(printgate.domain.__file__).parent


def _defined_in(context: str) -> set[str]:
    """Top-level names a context module defines itself (not those it imports)."""
    names: set[str] = set()
    for node in ast.parse((PACKAGE / f"{context}.py").read_text()).body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


@pytest.mark.parametrize("name", NAMES_BEFORE_THE_SPLIT)
def test_name_still_imports_from_printgate_domain_and_lives_in_one_context(name: str) -> None:
    homes = [c for c in CONTEXTS if name in _defined_in(c)]
    assert len(homes) == 1, homes
    module = importlib.import_module(f"printgate.domain.{homes[0]}")
    assert getattr(printgate.domain, name) is getattr(module, name)


def test_the_package_defines_nothing_itself() -> None:
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    assert all(isinstance(n, ast.ImportFrom) or isinstance(n, ast.Expr) for n in tree.body)
