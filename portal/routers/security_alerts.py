"""Security alerts (issue 20): who is told (subscriptions of the dealer's or the customer's
security contacts: e-mail, signed webhook, syslog/CEF) and what was raised recently.

Dealer administrators manage the dealer's subscriptions and those of its customers; customer
administrators only their customer's; auditors read the recent alerts of their tenant.
Every change is audited (``security_alert.subscription.added/removed``);
docs/security-alerting.md describes the rules and payloads.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import Response

from alerting.delivery import (
    DEFAULT_MAX_SUBSCRIPTIONS,
    check_resolves_public,
    subscription_cap_message,
    validate,
)
from alerting.engine import SEVERITY_NAMES
from alerting.errors import SubscriptionInvalid
from alerting.rules import Category
from alerting.secrets import seal
from portal.deps import CsrfChecked, CurrentLogin, DbSession, State
from portal.forms import with_private_switch
from portal.pages import render, see_other
from printgate.domain import Role, User, event_types
from printgate.store import security_subscriptions as subs
from printgate.store.tenants import get_customer, list_customers_of_dealer
from printgate.vault.kms import KeyWrapper

router = APIRouter(prefix="/security-alerts", tags=["security-alerts"], include_in_schema=False)  # pages and forms: not the JSON API's description

SUBSCRIPTION_ADDED = event_types.SECURITY_ALERT_SUBSCRIPTION_ADDED
SUBSCRIPTION_REMOVED = event_types.SECURITY_ALERT_SUBSCRIPTION_REMOVED
CATEGORY_LABELS = {
    Category.SIGN_IN.value: "Sign-in attacks (failed sign-in bursts, reused codes)",
    Category.TRANSFER.value: "Blocked transfers",
    Category.DEVICE.value: "Printer identity mismatches",
    Category.CHANNEL.value: "Relay and agent refusals, revoked agents",
    Category.CREDENTIALS.value: "Break-glass credential reveals",
}


def _admin(user: User) -> bool:
    return Role.DEALER_ADMIN in user.roles or Role.CUSTOMER_ADMIN in user.roles


def _scope(user: User) -> tuple[str | None, str | None]:
    """(dealer, customer) the user sees: a customer's staff that customer, a dealer's the dealer."""
    if user.customer_id is not None:
        return None, user.customer_id
    if user.dealer_id is not None:
        return user.dealer_id, None
    raise HTTPException(403, "security alerts belong to a dealer or a customer; this account has neither")


async def _page(request: Request, state: State, s: DbSession, login: CurrentLogin, *,
                status_code: int = 200, **extra: object) -> Response:
    user = login.user
    if not _admin(user) and Role.AUDITOR not in user.roles:
        raise HTTPException(403, "security alerts are for administrators and auditors")
    dealer_id, customer_id = _scope(user)
    alerts = await subs.recent_alerts(s, dealer_id=dealer_id, customer_id=customer_id, limit=100)
    subscriptions, customers = [], []
    if _admin(user):
        if customer_id is not None:
            customer = await get_customer(s, customer_id)
            subscriptions = await subs.list_subscriptions(
                s, dealer_id=customer.dealer_id if customer else None, customer_id=customer_id)
        else:
            subscriptions = await subs.list_subscriptions(s, dealer_id=dealer_id)
            customers = await list_customers_of_dealer(s, dealer_id or "")
    names = {c.id: c.name for c in customers}
    return render(state, request, "security_alerts.html", login=login, alerts=alerts,
                  subscriptions=subscriptions, customers=customers, customer_names=names,
                  categories=CATEGORY_LABELS, severities=SEVERITY_NAMES, admin=_admin(user),
                  status_code=status_code, **extra)


@router.get("")
async def security_alerts_page(request: Request, state: State, s: DbSession, login: CurrentLogin) -> Response:
    return await _page(request, state, s, login)


@router.post("/subscriptions")
async def add_subscription(
    request: Request, state: State, s: DbSession, login: CurrentLogin, _csrf: CsrfChecked,
    channel: Annotated[str, Form(max_length=16)], target: Annotated[str, Form(max_length=512)],
    contact: Annotated[str, Form(max_length=200)] = "",
    min_severity: Annotated[str, Form(max_length=16)] = "medium",
    categories: Annotated[list[str] | None, Form()] = None,
    customer: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    user = login.user
    if not _admin(user):
        raise HTTPException(403, "only dealer and customer administrators manage security-alert subscriptions")
    dealer_id, customer_id = _scope(user)
    if customer_id is not None:  # a customer's admin: always that customer
        found = await get_customer(s, customer_id)
        if found is None:
            raise HTTPException(403, "your customer no longer exists")
        dealer_id = found.dealer_id
    elif customer:
        found = await get_customer(s, customer)
        if found is None or found.dealer_id != dealer_id:
            raise HTTPException(404, "no such customer of yours")
        customer_id = found.id
    assert dealer_id is not None
    secret = secrets.token_urlsafe(32) if channel.strip().lower() == "webhook" else None
    form = {"channel": channel, "target": target, "contact": contact, "min_severity": min_severity,
            "categories": categories or [], "customer": customer}
    try:
        sub = validate(channel=channel, target=target, categories=list(categories or []),
                       min_severity=min_severity, secret=secret,
                       allow_private_webhooks=getattr(request.app.state, "allow_private_webhooks", False))
        await check_resolves_public(sub, allow_private_webhooks=getattr(request.app.state, "allow_private_webhooks",
                                                                         False))
    except SubscriptionInvalid as exc:
        return await _page(request, state, s, login, status_code=422, form=form,
                           error=with_private_switch(exc.message, "security_alerts.allow_private_webhooks"))
    cap = getattr(request.app.state, "max_security_subscriptions", DEFAULT_MAX_SUBSCRIPTIONS)
    if await subs.count_subscriptions(s, dealer_id=dealer_id, customer_id=customer_id) >= cap:
        return await _page(request, state, s, login, status_code=422,
                           error=subscription_cap_message(cap, customer_id), form=form)
    sealed = None
    if sub.secret is not None:
        kms: KeyWrapper | None = getattr(request.app.state, "security_alert_kms", None)
        if kms is None:
            raise HTTPException(503, "webhook subscriptions need the vault's master key, which this server "
                                     "does not have; use e-mail or syslog")
        sealed = await seal(kms, sub.secret, dealer_id=dealer_id, target=sub.target)
    stored = await subs.add_subscription(
        s, dealer_id=dealer_id, customer_id=customer_id, contact=contact.strip() or user.email,
        channel=sub.channel, target=sub.target, secret=sealed, categories=sub.categories,
        min_severity=sub.min_severity, now=state.clock(), created_by=user.email)
    await state.record(SUBSCRIPTION_ADDED, request=request, user=user, dealer_id=dealer_id, customer_id=customer_id,
                       details={"subscription": stored.id, "channel": sub.channel,
                                "categories": list(sub.categories), "min_severity": sub.min_severity},
                       personal={"target": sub.target})
    return await _page(request, state, s, login, new_secret=secret, new_subscription=stored.id)


@router.post("/subscriptions/{subscription_id}/delete")
async def delete_subscription(request: Request, state: State, s: DbSession, login: CurrentLogin,
                              _csrf: CsrfChecked, subscription_id: str) -> Response:
    user = login.user
    if not _admin(user):
        raise HTTPException(403, "only dealer and customer administrators manage security-alert subscriptions")
    dealer_id, customer_id = _scope(user)
    found = await subs.get_subscription(s, subscription_id)
    mine = found is not None and (found.customer_id == customer_id if customer_id is not None
                                  else found.dealer_id == dealer_id)
    if found is None or not mine:
        raise HTTPException(404, "no such subscription of yours")
    await subs.delete_subscription(s, subscription_id)
    await state.record(SUBSCRIPTION_REMOVED, request=request, user=user, dealer_id=found.dealer_id,
                       customer_id=found.customer_id,
                       details={"subscription": found.id, "channel": found.channel},
                       personal={"target": found.target})
    return see_other("/security-alerts")
