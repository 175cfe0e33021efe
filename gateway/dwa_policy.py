"""The broker's ``decide``: the dealer's rule set applied to the gathered facts.

Compiled policies are cached per rule-set body (a new version compiles once).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from gateway.broker import DwaFacts
from policy import Action, CompiledPolicy, default_ruleset, evaluate_open_facts, load_policy
from printgate.domain import Decision


@lru_cache(maxsize=256)
def _compiled(body_json: str) -> CompiledPolicy:
    return load_policy(json.loads(body_json))


def _policy_for(dealer_id: str, ruleset: Mapping[str, Any] | None) -> CompiledPolicy:
    if ruleset is None:
        return _default(dealer_id)
    return _compiled(json.dumps(ruleset, sort_keys=True, default=str))


@lru_cache(maxsize=256)
def _default(dealer_id: str) -> CompiledPolicy:
    return load_policy(default_ruleset(dealer_id))


def decide_dwa_open(facts: DwaFacts) -> Decision:
    return evaluate_open_facts(
        _policy_for(facts.customer.dealer_id, facts.ruleset),
        user=facts.user, device=facts.device, customer=facts.customer, site=facts.site, agent=facts.agent,
        open_alerts=facts.open_alerts, reason=facts.reason, reason_refusal=facts.reason_refusal,
        source_ip=facts.source_ip, mfa_age_seconds=facts.mfa_age_seconds, now=facts.now,
        user_live_sessions=facts.live_sessions_of_user, device_live_sessions=facts.live_sessions_of_device,
        approved_until=facts.approved_until, action=Action(facts.action),
    )
