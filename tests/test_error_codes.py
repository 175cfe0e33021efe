"""One errors module per layer, every error code a named constant (docs/architecture.md).

Failures are ``PrintgateError`` subclasses defined in ``printgate/errors.py``,
``policy/errors.py``, ``audit/errors.py``, ``integrations/errors.py``, ``gateway/errors.py``,
``portal/errors.py`` or ``agent/errors.py``; a ``code`` is one of their
constants, never a string written where the error is raised.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("printgate", "policy", "audit", "integrations", "alerting", "fleet", "gateway", "portal", "agent")
ERRORS_MODULES = {f"{p}/errors.py" for p in PACKAGES}
CODE_KEYWORDS = {"code", "error_code"}
ANSWER_KEYS = {"error", "error_code"}
CODE_SHAPE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)+$")  # snake_case codes, not labels such as "Error"  # keys of an error answer's code in JSON bodies


def _sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
                  if not p.name.endswith("_pb2.py") and not p.name.endswith("_pb2_grpc.py"))


def _error_class_names() -> set[str]:
    """Every class that derives (transitively, by name) from PrintgateError."""
    bases: dict[str, set[str]] = {}
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                bases.setdefault(node.name, set()).update(
                    b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else ""
                    for b in node.bases)
    errors, grew = {"PrintgateError"}, True
    while grew:
        new = {name for name, bs in bases.items() if bs & errors} - errors
        errors |= new
        grew = bool(new)
    return errors


def _violations(path: Path, error_classes: set[str]) -> list[str]:
    rel = path.relative_to(ROOT).as_posix()
    out: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), rel)):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg in CODE_KEYWORDS and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                    out.append(f"{rel}:{node.lineno}: {kw.arg}={kw.value.value!r} (use a constant of an errors module)")
        elif isinstance(node, ast.Dict):  # an error answer: {"error": <code>, ...} (JSON bodies)
            for key, value in zip(node.keys, node.values, strict=True):
                if (isinstance(key, ast.Constant) and key.value in ANSWER_KEYS
                        and isinstance(value, ast.Constant) and isinstance(value.value, str)
                        and CODE_SHAPE.match(value.value)):
                    out.append(f"{rel}:{node.lineno}: {{{key.value!r}: {value.value!r}}} (use a constant of an errors module)")
        elif isinstance(node, ast.ClassDef) and node.name in error_classes and rel not in ERRORS_MODULES:
            out.append(f"{rel}:{node.lineno}: error class {node.name} outside the layer's errors module")
        elif isinstance(node, ast.ClassDef) and rel in ERRORS_MODULES:
            for stmt in node.body:
                if (isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "code" for t in stmt.targets)
                        and isinstance(stmt.value, ast.Constant)):
                    out.append(f"{rel}:{stmt.lineno}: {node.name}.code is a string, not a named constant")
    return out


def test_every_error_code_is_a_named_constant_of_an_errors_module() -> None:
    error_classes = _error_class_names()
    found = [v for path in _sources() for v in _violations(path, error_classes)]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("module", sorted(ERRORS_MODULES))
def test_each_layer_has_its_errors_module(module: str) -> None:
    assert (ROOT / module).is_file()
