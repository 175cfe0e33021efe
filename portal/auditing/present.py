"""Audit records as people read them: details as key/value lines instead of JSON, event types
as words, and a session's events as a timeline (decision with its reasons, approval, firewall,
tunnel and identity checks, every request with blocked transfers marked, extensions, the end
and who or what ended it). Pure: the router loads, this arranges."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from printgate.domain import event_types

TITLES = {
    event_types.POLICY_DECISION: "Policy decision",
    event_types.APPROVAL_REQUESTED: "Access requested",
    event_types.APPROVAL_APPROVED: "Access approved",
    event_types.APPROVAL_DENIED: "Access denied by the customer",
    event_types.DWA_SESSION_REQUESTED: "Session requested",
    event_types.DWA_SESSION_AUTHORISED: "Session authorised",
    event_types.FIREWALL_RULE_ADDED: "Firewall opened for the session",
    event_types.FIREWALL_RULE_REMOVED: "Firewall closed",
    event_types.AGENT_COMMAND_SENT: "Tunnel command sent to the site's agent",
    event_types.TUNNEL_OPENED: "Tunnel opened (device identity checked by the agent)",
    event_types.TUNNEL_CLOSED: "Tunnel closed",
    event_types.TUNNEL_FAILED: "Tunnel failed",
    event_types.DEVICE_IDENTITY_MISMATCH: "Device identity did not match: refused",
    event_types.DWA_SESSION_OPENED: "Session open",
    event_types.DWA_SESSION_REASON_CLEARED: "The alert the session was opened for cleared",
    event_types.DWA_SESSION_REJOINED: "Technician rejoined the session",
    event_types.DWA_SESSION_REJOIN_REFUSED: "Rejoin refused",
    event_types.DWA_SESSION_EXTENDED: "More time granted",
    event_types.DWA_REQUEST: "Request",
    event_types.DWA_TRANSFER_BLOCKED: "Transfer blocked",
    event_types.DWA_WEBSOCKET: "WebSocket",
    event_types.DWA_SESSION_CLOSED: "Session ended",
    event_types.DWA_SESSION_FAILED: "Session failed",
    event_types.DWA_END_REQUESTED: "End requested in the portal",
    event_types.AUTH_LOGIN: "Sign-in",
    event_types.AUTH_LOGOUT: "Sign-out",
    event_types.AUTH_MFA: "Second factor",
    event_types.DWA_CREDENTIALS_DECISION: "Stored device credentials: decision",
    event_types.DWA_CREDENTIALS_DROPPED: "Stored device credentials dropped",
    event_types.DWA_CREDENTIAL_TYPED: "Stored credential typed into the device page",
    event_types.DWA_DEVICE_SIGNED_IN: "Signed in on the device with a stored credential",
    event_types.DWA_DEVICE_SIGN_IN_FAILED: "Sign-in on the device failed",
    event_types.DWA_SESSION_DENIED: "Session refused",
    event_types.DWA_SESSION_ENDED_BY_ACCESS_MODE: "Session ended: the customer changed its remote access",
    event_types.DWA_SOURCE_THROTTLED: "Too many requests from this address: slowed down",
    event_types.TENANT_REMOTE_ACCESS_CHANGED: "Remote access of the customer changed",
    event_types.TENANT_SITE_ACCESS_CHANGED: "Remote access of a site changed",
    event_types.RELAY_TUNNEL_CLOSED: "Relay tunnel closed",
}
EXTEND_REFUSED = "session.extend_refused"  # the gateway's rule for a refused "More time" (not a transfer)
ACTIONS = {"dwa.open": "open the web page", "dwa.extend": "more time", "dwa.approve": "approval"}
_INTERNAL_PATH = re.compile(r"^/(?:tmp|run|var|dev/shm)/\S*")  # a local socket or file: not the auditor's business
ATTRIBUTION = frozenset({"site_id", "user_id"})  # the story's summary says these once
REQUEST_TYPES = frozenset({event_types.DWA_REQUEST, event_types.DWA_TRANSFER_BLOCKED, event_types.DWA_WEBSOCKET, event_types.PROXY_REQUEST})


class EventLike(Protocol):
    @property
    def seq(self) -> int: ...
    @property
    def at(self) -> datetime: ...
    @property
    def type(self) -> str: ...
    @property
    def outcome(self) -> str: ...
    @property
    def actor(self) -> str | None: ...
    @property
    def source_ip(self) -> str | None: ...
    @property
    def details(self) -> Mapping[str, Any]: ...


def title(event_type: str) -> str:
    """An event type in words (``tenant.remote_access_changed`` → "Tenant: remote access changed"
    when it has no title of its own)."""
    if event_type in TITLES:
        return TITLES[event_type]
    head, _, rest = event_type.partition(".")
    if not rest:
        return event_type.replace("_", " ").capitalize()
    return f"{head.upper() if len(head) <= 3 else head.capitalize()}: {rest.replace('.', ' ').replace('_', ' ')}"


def code_words(code: str) -> str:
    """A reason code in words (``credentials.none_stored`` → "credentials: none stored")."""
    head, _, rest = code.partition(".")
    return f"{head}: {rest.replace('_', ' ').replace('.', ' ')}" if rest else code.replace("_", " ")


def _is_code(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[a-z_]+(?:\.[a-z_]+)+", value) is not None


def _text(value: Any) -> str:
    if isinstance(value, str) and _INTERNAL_PATH.match(value):
        return "a local tunnel socket"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "—"
    if isinstance(value, str | int | float):
        return str(value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def detail_items(details: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``details`` as (key, value) lines: nested objects flattened one level (``filter.since``),
    lists of reasons one message a line (the key named once, then ""), reason codes in words,
    other lists comma separated, local socket paths never shown."""
    out: list[tuple[str, str]] = []
    for key in sorted(details):
        value = details[key]
        if isinstance(value, Mapping):
            out.extend((f"{key}.{k}", _text(value[k])) for k in sorted(value) if value[k] not in (None, [], ""))
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) and "code" in v for v in value):
            out.extend(("" if i else key, str(v.get("message") or code_words(str(v["code"]))))
                       for i, v in enumerate(value))
        elif isinstance(value, list) and value and all(_is_code(v) for v in value):
            out.append((key, "; ".join(code_words(v) for v in value)))
        elif isinstance(value, list):
            out.append((key, ", ".join(_text(v) for v in value) or "—"))
        else:
            out.append((key, _text(value)))
    return out


def is_transfer_block(e: EventLike) -> bool:
    """A transfer the gateway stopped: not a refused "More time" or another session-level answer."""
    if e.type == event_types.DWA_TRANSFER_BLOCKED:
        return True
    d = e.details
    return (e.type in REQUEST_TYPES and bool(d.get("blocked") or e.outcome == "blocked")
            and d.get("direction") != "session" and not str(d.get("rule", "")).startswith("session."))


def is_extend_refusal(e: EventLike) -> bool:
    return e.type in REQUEST_TYPES and e.details.get("rule") == EXTEND_REFUSED


@dataclass(frozen=True, slots=True)
class Step:
    seq: int
    at: datetime
    type: str
    title: str
    outcome: str
    actor: str | None
    items: tuple[tuple[str, str], ...]
    request: bool  # one of the session's requests (shown compactly)
    blocked: bool
    summary: str  # one line: "GET /index.html → 200" or the reason

    @property
    def css(self) -> str:
        if self.blocked or self.outcome in ("denied", "blocked", "failure"):
            return "bad"
        return "request" if self.request else "step"


def _summary(e: EventLike) -> str:
    d = e.details
    if is_extend_refusal(e):
        return str(d.get("reason") or "the policy allows no more time")
    if e.type in REQUEST_TYPES:
        line = f"{d.get('method', '')} {d.get('path', '')}".strip()
        if "status" in d:
            line += f" → {d['status']}"
        if d.get("blocked"):
            line += f" — blocked: {d.get('rule') or d.get('why') or d.get('reason') or 'transfer'}"
        return line
    if e.type == event_types.POLICY_DECISION:
        verb = "allowed" if d.get("allow") else "refused"
        action = ACTIONS.get(str(d.get("action", "")), str(d.get("action") or "access"))
        return f"{verb} for {e.actor} (requested by {e.actor}: {action})" if e.actor else verb
    if e.type == event_types.DWA_CREDENTIALS_DECISION:
        return "a stored credential is used" if d.get("allow") else "no stored credential is used"
    if e.type == event_types.DWA_SESSION_OPENED and isinstance(d.get("reason"), Mapping):
        return f"opened for {reason_label(d['reason'])}"
    for key in ("reason", "expires_at", "upstream", "message", "error"):
        if key in d and not (isinstance(d[key], str) and _INTERNAL_PATH.match(d[key])):
            return f"{key.replace('_', ' ')}: {_text(d[key])}"
    return ""


def timeline(events: Sequence[EventLike]) -> list[Step]:
    out = []
    for e in events:
        request = e.type in REQUEST_TYPES
        blocked = is_transfer_block(e)
        items = tuple((k, v) for k, v in detail_items(e.details) if k not in ATTRIBUTION)
        name = "More time refused" if is_extend_refusal(e) else title(e.type)
        if e.type == event_types.POLICY_DECISION and e.details.get("action") == "dwa.extend":
            name = "Policy decision on more time"
        actor = None if e.type == event_types.POLICY_DECISION else e.actor  # the summary names them
        out.append(Step(e.seq, e.at, e.type, name, e.outcome, actor, items, request and not is_extend_refusal(e),
                        blocked, _summary(e)))
    return out


def reason_label(reason: Mapping[str, Any]) -> str:
    """A session's reason as audited (``SessionReason.to_dict``) in words (escaped where shown)."""
    kind = reason.get("kind")
    if kind == "alert":
        what = reason.get("description") or reason.get("code") or "printer alert"
        return f"alert '{what}' ({reason.get('severity') or 'unknown severity'}, alert #{reason.get('alert_id')})"
    if kind == "ticket":
        return f"ticket {reason.get('text', '')}"
    return str(reason.get("text", ""))


@dataclass(frozen=True, slots=True)
class StoryFacts:
    """The session in one paragraph."""

    technician: str | None
    source_ip: str | None
    requests: int
    blocked: int
    extensions: int
    ended_by: str | None
    end_reason: str | None
    decision_allowed: bool | None
    extensions_refused: int = 0  # "More time" refused by the policy (not a blocked transfer)
    opened_for: str | None = None  # the session's documented reason (issue 20)
    reason_cleared_at: str | None = None  # when the alert it was opened for cleared


def story_facts(events: Sequence[EventLike]) -> StoryFacts:
    decision = next((e for e in events if e.type == event_types.POLICY_DECISION), None)
    end = next((e for e in reversed(events) if e.type in (event_types.DWA_SESSION_CLOSED, event_types.DWA_SESSION_FAILED)), None)
    requests = [e for e in events if e.type in REQUEST_TYPES]
    why = decision.details.get("session_reason") if decision else None
    cleared = next((e for e in events if e.type == event_types.DWA_SESSION_REASON_CLEARED), None)
    return StoryFacts(
        technician=decision.actor if decision else next((e.actor for e in events if e.actor), None),
        source_ip=decision.source_ip if decision else None,
        requests=sum(1 for e in requests if not is_extend_refusal(e)),
        blocked=sum(1 for e in requests if is_transfer_block(e)),
        extensions_refused=sum(1 for e in requests if is_extend_refusal(e)),
        extensions=sum(1 for e in events if e.type == event_types.DWA_SESSION_EXTENDED),
        ended_by=(end.actor if end else None), end_reason=(str(end.details.get("reason", "")) if end else None),
        decision_allowed=bool(decision.details.get("allow")) if decision else None,
        opened_for=(reason_label(why) if isinstance(why, Mapping)
                    else "no reason given" if decision is not None and decision.details.get("allow") else None),
        reason_cleared_at=str(cleared.details.get("cleared_at", "")) if cleared else None,
    )
