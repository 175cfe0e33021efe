"""Every audit event type is a named constant in ``printgate.domain.event_types`` (issue 16).

An AST scan of the production tree: no ``AuditEventIn(type=...)`` and no call of a helper that
forwards its argument into ``type=`` (``PortalState.record``, the broker's ``_audit_step``, the
CLI's ``_event``, ... found by the scan itself) is given a string literal, a module-level string
constant of its own module, or a local variable assigned a string literal; the constants are
unique dotted names.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from printgate.domain import event_types

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("printgate", "policy", "audit", "integrations", "alerting", "fleet", "gateway", "portal", "agent")
TYPE_KEYWORDS = frozenset({"type", "type_", "event_type"})
TYPE_PARAM = re.compile(r"^(event_)?type_?$")  # how forwarding helpers name the type parameter
DOTTED = re.compile(r"^[a-z_]+(\.[a-z_]+)+$")
# Files mid-edit by another helper when the constants were introduced (issue 16): their sites
# are converted when that work is committed. Keep this empty.
PENDING: frozenset[str] = frozenset()


def _files(root: Path) -> Iterator[Path]:
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" not in path.parts and path.name != "event_types.py":
                yield path


def _name(func: ast.expr) -> str:
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _params(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    names = [a.arg for a in fn.args.posonlyargs + fn.args.args]
    return names[1:] if names and names[0] in ("self", "cls") else names


def _functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    yield from (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef))


def _type_args(call: ast.Call, forwarders: dict[str, set[str | int]]) -> Iterator[ast.expr]:
    """The expressions ``call`` passes as an audit event type."""
    name = _name(call.func)
    if name == "AuditEventIn":
        yield from (k.value for k in call.keywords if k.arg == "type")
        return
    if isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Name) \
            and call.func.value.id in ("log", "logger"):
        return  # a log field, not an audit event (still checked by keyword below)
    slots = forwarders.get(name, set())
    yield from (a for i, a in enumerate(call.args) if i in slots)
    yield from (k.value for k in call.keywords if k.arg in slots)


def find_forwarders(root: Path) -> dict[str, set[str | int]]:
    """Functions whose parameter reaches ``AuditEventIn(type=...)``, by name: slot -> index/name."""
    trees = [ast.parse(p.read_text(encoding="utf-8")) for p in _files(root)]
    forwarders: dict[str, set[str | int]] = {}
    changed = True
    while changed:
        changed = False
        for tree in trees:
            for fn in _functions(tree):
                params = _params(fn)
                for call in (n for n in ast.walk(fn) if isinstance(n, ast.Call)):
                    for arg in _type_args(call, forwarders):
                        if isinstance(arg, ast.Name) and arg.id in params and TYPE_PARAM.match(arg.id):
                            slots = forwarders.setdefault(fn.name, set())
                            new = {params.index(arg.id), arg.id} - slots
                            if new:
                                slots |= new
                                changed = True
    return forwarders


def _literals(expr: ast.expr) -> list[str]:
    """String literals ``expr`` evaluates to (directly, or through ``a if c else b`` / ``a or b``)."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return [expr.value]
    if isinstance(expr, ast.JoinedStr):
        return [ast.unparse(expr)]
    if isinstance(expr, ast.IfExp):
        return _literals(expr.body) + _literals(expr.orelse)
    if isinstance(expr, ast.BoolOp):
        return [s for v in expr.values for s in _literals(v)]
    return []


def violations(root: Path) -> list[str]:
    forwarders = find_forwarders(root)
    found: list[str] = []
    for path in _files(root):
        rel = path.relative_to(root).as_posix()
        if rel in PENDING:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module_strings = {t.id for n in tree.body if isinstance(n, ast.Assign)
                          and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
                          for t in n.targets if isinstance(t, ast.Name)}
        scopes: list[ast.AST] = [tree, *_functions(tree)]
        for scope in scopes:
            local_strings = {t.id for n in ast.walk(scope) if isinstance(n, ast.Assign) and _literals(n.value)
                             and scope is not tree for t in n.targets if isinstance(t, ast.Name)}
            for call in (n for n in ast.walk(scope) if isinstance(n, ast.Call)):
                exprs = list(_type_args(call, forwarders))
                exprs += [k.value for k in call.keywords if k.arg in TYPE_KEYWORDS
                          and any(DOTTED.match(s) for s in _literals(k.value))]
                for expr in exprs:
                    where = f"{rel}:{expr.lineno}: {ast.unparse(expr)}"
                    if _literals(expr):
                        found.append(f"{where} (a string literal)")
                    elif isinstance(expr, ast.Name) and expr.id in module_strings:
                        found.append(f"{where} (a string constant of the module)")
                    elif isinstance(expr, ast.Name) and expr.id in local_strings:
                        found.append(f"{where} (a local variable assigned a string literal)")
    return sorted(set(found))


def test_every_audit_event_type_is_a_named_constant() -> None:
    found = violations(ROOT)
    assert not found, "use a constant from printgate/domain/event_types.py:\n" + "\n".join(found)


def test_the_scan_sees_the_forwarding_helpers() -> None:
    # the scan must know the helpers, or a literal passed through them would go unseen
    assert {"record", "_audit_step", "_event", "_append"} <= set(find_forwarders(ROOT))


def test_event_type_constants_are_unique_dotted_names() -> None:
    values = [v for k, v in vars(event_types).items() if k.isupper() and isinstance(v, str)]
    assert len(values) == len(set(values)), "two constants name the same event type"
    assert all(DOTTED.match(v) for v in values), [v for v in values if not DOTTED.match(v)]
    assert len(values) > 90
