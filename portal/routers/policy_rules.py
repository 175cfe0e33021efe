"""The tenant's policy rule set: view and change it as JSON (validated,
versioned, every change audited)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from policy import default_ruleset, parse_ruleset
from policy.errors import RuleSetInvalid
from portal.deps import CsrfChecked, CurrentLogin, DbSession, State, require_role
from portal.pages import render, see_other
from printgate.domain import Role, User
from printgate.store import rule_sets

router = APIRouter(prefix="/admin/policy", tags=["policy"])
DealerAdmin = Annotated[User, Depends(require_role(Role.DEALER_ADMIN))]


@router.get("")
async def policy_page(request: Request, state: State, s: DbSession, login: CurrentLogin,
                      _admin: DealerAdmin) -> Response:
    dealer = login.user.dealer_id or ""
    body = await rule_sets.load_ruleset(s, dealer)
    ruleset = parse_ruleset(body) if body else default_ruleset(dealer)
    text = json.dumps(ruleset.model_dump(mode="json"), indent=2, sort_keys=True)
    return render(state, request, "policy.html", login=login, text=text, version=ruleset.version)


@router.post("")
async def policy_save(request: Request, state: State, s: DbSession, login: CurrentLogin,
                      _admin: DealerAdmin, _csrf: CsrfChecked, rules: Annotated[str, Form()]) -> Response:
    dealer = login.user.dealer_id or ""
    try:
        data = json.loads(rules)
        if not isinstance(data, dict):
            raise RuleSetInvalid("the rule set must be a JSON object")
        data["dealer_id"] = dealer
        data.setdefault("version", 0)
        parse_ruleset(data)
    except (json.JSONDecodeError, RuleSetInvalid) as exc:
        return render(state, request, "policy.html", login=login, text=rules, version=None,
                      error=str(exc), status_code=422)
    version = await rule_sets.save_ruleset(s, dealer, data, actor=login.user.email, now=state.clock())
    await state.record("policy.changed", request=request, user=login.user,
                       details={"version": version, "rules": len(data.get("rules", []))})
    return see_other("/admin/policy")
