"""The nftables elements of the firewall exceptions, as text and parsed back: pure, no I/O.

Two sets (``deploy/nftables/printgate.nft``):

* ``sessions`` holds one element per exception, ``source . port . tag`` where
  the tag is a 32-bit digest of the rule id, with the exception's own timeout
  and ``comment`` = the rule id. Nothing matches packets against it: it is the
  reference count the kernel keeps, so two sessions from one address each
  have their own element and a restarted gateway finds both.
* ``allowed`` holds one element per ``source . port`` with the timeout of the
  longest-lived exception on it; the input chain matches packets against it.
  When an exception ends, the gateway sets it to the remaining exceptions'
  longest timeout, or deletes it when none remains. Each change is one nft
  transaction, so new connections see the old element or the new one, never a gap.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.firewall.base import FirewallRule

SESSIONS_SET = "sessions"
ALLOWED_SET = "allowed"
SESSIONS_SET_TYPE = "ipv4_addr . inet_service . mark"


def rule_tag(rule_id: str) -> int:
    """The 32-bit tag that makes an exception's ``sessions`` element its own."""
    return int.from_bytes(hashlib.blake2b(rule_id.encode(), digest_size=4).digest(), "big")


def _ms(seconds: float) -> str:
    return f"{max(1, math.ceil(seconds * 1000))}ms"


def _replace(table: str, set_name: str, key: str, timeout_s: float, comment: str) -> list[str]:
    """Set one element's timeout and comment in a transaction (add, delete, add: no error if absent)."""
    return [
        f"add element inet {table} {set_name} {{ {key} timeout 1s }}",
        f"delete element inet {table} {set_name} {{ {key} }}",
        f'add element inet {table} {set_name} {{ {key} timeout {_ms(timeout_s)} comment "{comment}" }}',
    ]


def _remove(table: str, set_name: str, key: str) -> list[str]:
    """Delete one element in a transaction, whether or not it is still there (it may have expired)."""
    return [
        f"add element inet {table} {set_name} {{ {key} timeout 1s }}",
        f"delete element inet {table} {set_name} {{ {key} }}",
    ]


def session_key(rule: FirewallRule) -> str:
    return f"{rule.src} . {rule.dport} . {rule_tag(rule.rule_id):#010x}"


def allowed_key(src: str, dport: int) -> str:
    return f"{src} . {dport}"


def grant_commands(table: str, rule: FirewallRule, others: Iterable[FirewallRule], now: float) -> list[str]:
    """Add ``rule``'s own element; the shared ``allowed`` element lives as long as the longest of all."""
    longest = max([rule, *others], key=lambda r: r.expires_at)
    return [
        *_replace(table, SESSIONS_SET, session_key(rule), rule.expires_at - now, rule.rule_id),
        *_replace(table, ALLOWED_SET, allowed_key(rule.src, rule.dport), longest.expires_at - now, longest.rule_id),
    ]


def end_commands(table: str, rule: FirewallRule, remaining: Iterable[FirewallRule], now: float) -> list[str]:
    """Remove ``rule``'s element; keep ``allowed`` for the ``remaining`` exceptions on its source and port."""
    commands = _remove(table, SESSIONS_SET, session_key(rule))
    alive = [r for r in remaining if r.expires_at > now]
    key = allowed_key(rule.src, rule.dport)
    if alive:
        longest = max(alive, key=lambda r: r.expires_at)
        commands += _replace(table, ALLOWED_SET, key, longest.expires_at - now, longest.rule_id)
    else:
        commands += _remove(table, ALLOWED_SET, key)
    return commands


@dataclass(frozen=True, slots=True)
class SetElement:
    values: tuple[str | int, ...]  # the concatenated key: (src, port) or (src, port, tag)
    comment: str
    expires_in_s: float


def parse_set(nft_json: str) -> Iterator[SetElement]:
    """The elements of ``nft -j list set ...`` output (unknown shapes are skipped, never guessed)."""
    for item in json.loads(nft_json).get("nftables", []):
        set_obj = item.get("set") if isinstance(item, Mapping) else None
        if not isinstance(set_obj, Mapping):
            continue
        for elem in set_obj.get("elem", []):
            body: Any = elem.get("elem", elem) if isinstance(elem, Mapping) else None
            if not isinstance(body, Mapping):
                continue
            val = body.get("val")
            concat = val.get("concat") if isinstance(val, Mapping) else None
            if not isinstance(concat, list):
                continue
            yield SetElement(tuple(concat), str(body.get("comment", "")),
                             float(body.get("expires", body.get("timeout", 0))))


def session_rules(elements: Iterable[SetElement], clock: float | None = None) -> list[FirewallRule]:
    """``sessions`` elements as rules (``expires_at`` on the monotonic clock, like the backend's)."""
    now = time.monotonic() if clock is None else clock
    return [
        FirewallRule(rule_id=e.comment, src=str(e.values[0]), dport=int(e.values[1]), expires_at=now + e.expires_in_s)
        for e in elements
        if len(e.values) == 3 and e.comment and int(e.values[2]) == rule_tag(e.comment)
    ]
