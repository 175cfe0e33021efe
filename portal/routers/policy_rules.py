"""The tenant's policy rule set: limits and rules edited as forms (or as JSON), validated,
versioned, every change audited; a preview shows the decision "open web page" would get for
a technician, a device and an address (``policy explain``), also for a rule before it is saved."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from policy import RuleSet, default_ruleset, parse_ruleset
from policy.errors import RuleSetInvalid
from portal.deps import CsrfChecked, CurrentLogin, DbSession, State, require_role
from portal.pages import render, see_other
from portal.policy_form import (
    DAYS,
    KINDS,
    LIMITS,
    ROLES,
    describe,
    rule_from_form,
    with_limits,
    with_rule,
    without_rule,
)
from portal.policy_preview import explain_open
from portal.state import Login
from printgate.domain import Role, User, event_types
from printgate.store import rule_sets
from printgate.store.devices import list_devices_of_dealer
from printgate.store.tenants import list_customers_of_dealer, list_sites_of_customers
from printgate.store.users import list_users

router = APIRouter(prefix="/admin/policy", tags=["policy"], include_in_schema=False)  # pages and forms: not the JSON API's description
DealerAdmin = Annotated[User, Depends(require_role(Role.DEALER_ADMIN))]


@dataclass(frozen=True, slots=True)
class PreviewAsk:
    """Whom, which device and from where the preview asks about."""

    user: str = ""
    device: str = ""
    ip: str = "127.0.0.1"
    no_mfa: bool = False

    @classmethod
    def of(cls, form: Any) -> PreviewAsk:
        return cls(str(form.get("preview_user", "")), str(form.get("preview_device", "")),
                   str(form.get("preview_ip", "")).strip() or "127.0.0.1", bool(form.get("preview_no_mfa")))

    def query(self) -> str:
        if not (self.user and self.device):
            return ""
        return (f"?preview_user={self.user}&preview_device={self.device}&preview_ip={self.ip}"
                + ("&preview_no_mfa=1" if self.no_mfa else ""))


async def _saved(s: DbSession, dealer: str) -> RuleSet:
    body = await rule_sets.load_ruleset(s, dealer)
    return parse_ruleset(body) if body else default_ruleset(dealer)


async def _page(request: Request, state: State, s: DbSession, login: Login, ask: PreviewAsk, *,
                draft: RuleSet | None = None, text: str | None = None, error: str | None = None,
                status_code: int = 200) -> Response:
    dealer = login.user.dealer_id or ""
    saved = await _saved(s, dealer)
    customers = await list_customers_of_dealer(s, dealer)
    sites = await list_sites_of_customers(s, [c.id for c in customers])
    customer_names: dict[str, str] = {c.id: c.name for c in customers}
    names = customer_names | {x.id: f"{customer_names.get(x.customer_id, '')} · {x.name}" for x in sites}
    users = [u for u in await list_users(s, dealer_id=dealer) if not u.disabled]
    devices = await list_devices_of_dealer(s, dealer)
    explained = None
    user = next((u for u in users if u.id == ask.user), None)
    if user is not None and any(d.id == ask.device for d, _ in devices):
        explained = await explain_open(s, user, ask.device, source_ip=ask.ip, now=state.clock(),
                                       mfa_age=None if ask.no_mfa else 60.0, ruleset=draft)
    shown = draft or saved
    return render(
        state, request, "policy.html", login=login, status_code=status_code, error=error,
        ruleset=shown, saved=saved, draft=draft is not None,
        rules=[(r, describe(r, names)) for r in shown.rules], limits=LIMITS, kinds=KINDS, days=DAYS,
        roles=ROLES, customers=customers, sites=sites, names=names, users=users, devices=devices, ask=ask,
        explained=explained,
        text=text if text is not None else json.dumps(saved.model_dump(mode="json"), indent=2, sort_keys=True))


async def _save(request: Request, state: State, s: DbSession, login: Login, body: dict[str, Any],
                change: str) -> int:
    dealer = login.user.dealer_id or ""
    body = {**body, "dealer_id": dealer}
    body.setdefault("version", 0)
    parse_ruleset(body)  # RuleSetInvalid names every bad field
    version = await rule_sets.save_ruleset(s, dealer, body, actor=login.user.email, now=state.clock())
    await state.record(event_types.POLICY_CHANGED, request=request, user=login.user,
                       details={"version": version, "rules": len(body.get("rules", [])), "change": change})
    return version


@router.get("")
async def policy_page(request: Request, state: State, s: DbSession, login: CurrentLogin,
                      _admin: DealerAdmin) -> Response:
    return await _page(request, state, s, login, PreviewAsk.of(request.query_params))


@router.post("/limits")
async def save_limits(request: Request, state: State, s: DbSession, login: CurrentLogin,
                      _admin: DealerAdmin, _csrf: CsrfChecked) -> Response:
    form = await request.form()
    try:
        await _save(request, state, s, login, with_limits(await _saved(s, login.user.dealer_id or ""), form),
                    "limits")
    except RuleSetInvalid as exc:
        return await _page(request, state, s, login, PreviewAsk.of(form), error=str(exc), status_code=422)
    return see_other("/admin/policy" + PreviewAsk.of(form).query())


@router.post("/rules")
async def add_rule(request: Request, state: State, s: DbSession, login: CurrentLogin,
                   _admin: DealerAdmin, _csrf: CsrfChecked) -> Response:
    form = await request.form()
    data = {k: form.getlist(k) if k in ("days", "roles") else form.get(k) for k in form}
    ask = PreviewAsk.of(form)
    dealer = login.user.dealer_id or ""
    body = with_rule(await _saved(s, dealer), rule_from_form(data))
    try:
        if form.get("action") == "preview":
            draft = parse_ruleset({**body, "dealer_id": dealer})
            return await _page(request, state, s, login, ask, draft=draft)
        await _save(request, state, s, login, body, f"rule {data.get('rule_id')} added")
    except RuleSetInvalid as exc:
        return await _page(request, state, s, login, ask, error=str(exc), status_code=422)
    return see_other("/admin/policy" + ask.query())


@router.post("/rules/{rule_id}/remove")
async def remove_rule(request: Request, state: State, s: DbSession, login: CurrentLogin,
                      _admin: DealerAdmin, _csrf: CsrfChecked, rule_id: str) -> Response:
    form = await request.form()
    await _save(request, state, s, login, without_rule(await _saved(s, login.user.dealer_id or ""), rule_id),
                f"rule {rule_id} removed")
    return see_other("/admin/policy" + PreviewAsk.of(form).query())


@router.post("")
async def policy_save(request: Request, state: State, s: DbSession, login: CurrentLogin,
                      _admin: DealerAdmin, _csrf: CsrfChecked, rules: Annotated[str, Form()]) -> Response:
    """The whole rule set as JSON (the advanced editor)."""
    try:
        data = json.loads(rules)
        if not isinstance(data, dict):
            raise RuleSetInvalid("the rule set must be a JSON object")
        await _save(request, state, s, login, data, "edited as JSON")
    except (json.JSONDecodeError, RuleSetInvalid) as exc:
        return await _page(request, state, s, login, PreviewAsk(), text=rules, error=str(exc), status_code=422)
    return see_other("/admin/policy")
