"""ORM rows stay in ``printgate.store`` (docs/architecture.md, issue 16).

A public function of a ``printgate.store`` module that returns an ORM row (a ``*Row``
class in its return annotation) may only be called inside the store: everything above
it gets frozen domain types and changes data through intent-named store functions.

``KNOWN_LEAKS`` listed the row-returning functions still called outside the store when this
check was written; it is empty now (audit reads return ``Stored*`` types, reveals a
``RevealRequest``, discovery a ``Device``) and must stay so: a new leak fails.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import printgate.store

ROOT = Path(__file__).resolve().parent.parent
ABOVE_THE_STORE = ("printgate", "policy", "audit", "integrations", "gateway", "portal", "agent", "lab")
ROW = re.compile(r"\b[A-Z]\w*Row\b")

KNOWN_LEAKS: set[str] = set()  # emptied (issue 16): keep it empty


def row_returning_functions() -> dict[str, str]:
    """``module.function`` -> its return annotation, for every public store function returning a row."""
    found: dict[str, str] = {}
    for info in pkgutil.walk_packages(printgate.store.__path__, "printgate.store."):
        if ".migrations" in info.name or ".models" in info.name:
            continue
        module = importlib.import_module(info.name)
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("_") or fn.__module__ != module.__name__:
                continue
            returns = fn.__annotations__.get("return")
            text = returns if isinstance(returns, str) else repr(returns)
            if ROW.search(text):
                found[f"{module.__name__}.{name}"] = text
    return found


def _sources_above_the_store() -> list[tuple[Path, str]]:
    files = [p for pkg in ABOVE_THE_STORE for p in (ROOT / pkg).rglob("*.py")]
    store = ROOT / "printgate" / "store"
    return [(p, p.read_text(encoding="utf-8")) for p in sorted(files) if store not in p.parents]


def callers_outside_the_store(qualified: str, sources: list[tuple[Path, str]]) -> list[str]:
    module, name = qualified.rsplit(".", 1)
    short = module.rsplit(".", 1)[1]
    call = re.compile(rf"(?<!def )(?<![\w]){re.escape(name)}\(|\.{re.escape(name)}\(")
    imports_it = re.compile(rf"{re.escape(module)}\b|from printgate\.store import [^\n]*\b{short}\b")
    return [p.relative_to(ROOT).as_posix() for p, text in sources
            if imports_it.search(text) and call.search(text)]


def test_the_check_sees_row_returning_functions() -> None:
    """The annotation scan works (it would pass vacuously if it found nothing)."""
    assert "printgate.store.devices.find_by_identity" in row_returning_functions()  # used inside the store only


def test_no_new_store_function_hands_orm_rows_above_the_store() -> None:
    sources = _sources_above_the_store()
    leaks = {q: callers for q in row_returning_functions()
             if (callers := callers_outside_the_store(q, sources))}
    new = {q: c for q, c in leaks.items() if q not in KNOWN_LEAKS}
    assert not new, ("store functions returning ORM rows are called outside printgate.store; return a "
                     f"frozen domain type (printgate/domain/) instead: {new}")
    gone = KNOWN_LEAKS - set(leaks)
    assert not gone, f"no longer leaking rows, remove from KNOWN_LEAKS: {sorted(gone)}"
