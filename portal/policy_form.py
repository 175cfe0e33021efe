"""The access policy as a form: the rule set's limits as number fields, each rule in words,
and one small form per rule kind turned back into rule data (validated by ``policy``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policy import RuleSet
from printgate.domain import Role


@dataclass(frozen=True, slots=True)
class NumberField:
    name: str
    label: str
    low: int
    high: int


LIMITS = (
    NumberField("session_max_minutes", "Longest session (minutes)", 1, 24 * 60),
    NumberField("idle_timeout_minutes", "Idle time before a session ends (minutes)", 1, 24 * 60),
    NumberField("mfa_max_age_minutes", "Second factor valid for (minutes)", 0, 24 * 60),
    NumberField("max_sessions_per_user", "Open sessions per technician", 0, 1000),
    NumberField("max_sessions_per_device", "Open sessions per device", 0, 1000),
)

KINDS = {
    "time_window": "Only at these times",
    "source_ip": "Only from these networks",
    "roles": "Only these roles",
    "mfa": "Fresher second factor",
    "session_limit": "Fewer open sessions",
    "device_model": "Only these device models",
    "device_labels": "Only devices with these labels",
    "deny": "No web access at all",
}
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _words(values: Any) -> str:
    return ", ".join(sorted(str(v) for v in values))


def describe(rule: Any, names: Mapping[str, str]) -> str:
    """A rule in words (``names``: customer and site ids -> names)."""
    kind = rule.kind
    if kind == "time_window":
        what = f"only {_words(d.value for d in rule.days)} {rule.start:%H:%M}-{rule.end:%H:%M} ({rule.timezone})"
    elif kind == "source_ip":
        what = f"only from {', '.join(rule.cidrs)}"
    elif kind == "roles":
        what = f"only {_words(r.value for r in rule.allowed)}"
    elif kind == "mfa":
        what = f"second factor at most {rule.max_age_minutes} min old"
    elif kind == "session_limit":
        parts = [f"{rule.per_user} per technician" if rule.per_user is not None else "",
                 f"{rule.per_device} per device" if rule.per_device is not None else ""]
        what = "at most " + " and ".join(p for p in parts if p)
    elif kind == "device_model":
        what = f"only models matching {', '.join(rule.allow)}"
    elif kind == "device_labels":
        parts = [f"with one of {_words(rule.require_any)}" if rule.require_any else "",
                 f"without {_words(rule.forbid)}" if rule.forbid else ""]
        what = "only devices " + " and ".join(p for p in parts if p)
    else:
        what = "no web access"
    scope = rule.scope
    where = (f"at site {names.get(scope.site_id, scope.site_id)}" if scope.site_id else
             f"at customer {names.get(scope.customer_id, scope.customer_id)}" if scope.customer_id else
             "everywhere")
    return f"{what}, {where}"


def _list(text: str) -> list[str]:
    return [x.strip() for x in text.replace("\n", ",").split(",") if x.strip()]


def rule_from_form(form: Mapping[str, Any]) -> dict[str, Any]:
    """Rule data from an add-rule form; ``policy`` validates it (and names bad fields)."""
    kind = str(form.get("kind", ""))
    rule: dict[str, Any] = {"kind": kind, "id": str(form.get("rule_id", "")).strip(),
                            "description": str(form.get("description", "")).strip()}
    scope = str(form.get("scope", ""))
    if scope.startswith("site:"):
        rule["scope"] = {"site_id": scope[5:]}
    elif scope.startswith("customer:"):
        rule["scope"] = {"customer_id": scope[9:]}
    if kind == "time_window":
        rule |= {"timezone": str(form.get("timezone", "")).strip(), "days": list(form.get("days", [])),
                 "start": form.get("start") or "08:00", "end": form.get("end") or "18:00"}
    elif kind == "source_ip":
        rule["cidrs"] = _list(str(form.get("cidrs", "")))
    elif kind == "roles":
        rule["allowed"] = list(form.get("roles", []))
    elif kind == "mfa":
        rule["max_age_minutes"] = form.get("max_age_minutes") or None
    elif kind == "session_limit":
        rule["per_user"] = form.get("per_user") or None
        rule["per_device"] = form.get("per_device") or None
    elif kind == "device_model":
        rule["allow"] = _list(str(form.get("patterns", "")))
    elif kind == "device_labels":
        rule["require_any"] = _list(str(form.get("require_any", "")))
        rule["forbid"] = _list(str(form.get("forbid", "")))
    return rule


def with_rule(ruleset: RuleSet, rule: dict[str, Any]) -> dict[str, Any]:
    body = ruleset.model_dump(mode="json")
    body["rules"] = [*body["rules"], rule]
    return body


def without_rule(ruleset: RuleSet, rule_id: str) -> dict[str, Any]:
    body = ruleset.model_dump(mode="json")
    body["rules"] = [r for r in body["rules"] if r["id"] != rule_id]
    return body


def with_limits(ruleset: RuleSet, form: Mapping[str, Any]) -> dict[str, Any]:
    body = ruleset.model_dump(mode="json")
    for f in LIMITS:
        if str(form.get(f.name, "")).strip():
            body[f.name] = str(form[f.name]).strip()
    return body


ROLES = tuple(r.value for r in Role)
