"""`printgate admin security-alerts ...`: who hears about security alerts (issue 20).

A dealer's or a customer's security contact subscribes to rule categories with a minimum
severity and a channel (e-mail, signed webhook, syslog/CEF); every change is audited
(``security_alert.subscription.*``, actor ``cli:<os user>``) in the same transaction.
docs/security-alerting.md describes the rules and the payloads.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from printgate.cli.admin import ConfigOpt, _audit, _database, _event, _fail, _settings
from printgate.domain import event_types

app = typer.Typer(no_args_is_help=True, help="security-alert subscriptions of dealers and customers")

SUBSCRIPTION_ADDED = event_types.SECURITY_ALERT_SUBSCRIPTION_ADDED
SUBSCRIPTION_REMOVED = event_types.SECURITY_ALERT_SUBSCRIPTION_REMOVED


@app.command("subscribe")
def subscribe(
    dealer: Annotated[str, typer.Option(help="the dealer id (`printgate admin dealers`)")],
    channel: Annotated[str, typer.Option(help="email, webhook or syslog")],
    target: Annotated[str, typer.Option(help="an e-mail address, an https:// URL, or tls://host:port "
                                               "(tcp://host:port) of a syslog collector")],
    contact: Annotated[str, typer.Option(help="who this is, e.g. 'Acme SOC'")] = "security contact",
    customer: Annotated[str | None, typer.Option(help="only this customer's alerts (its id); "
                                                       "default: the dealer's and all its customers'")] = None,
    categories: Annotated[str, typer.Option(help="comma-separated: sign_in, transfer, device, channel, "
                                                  "credentials (default: all)")] = "",
    min_severity: Annotated[str, typer.Option(help="low, medium, high or critical")] = "medium",
    config: ConfigOpt = None,
) -> None:
    """Subscribe a security contact; a webhook gets a new signing secret, shown once."""
    settings = _settings(config)
    secret = secrets.token_urlsafe(32) if channel.strip().lower() == "webhook" else None
    sub_id = asyncio.run(_subscribe(settings, dealer, customer, contact, channel, target, categories,
                                    min_severity, secret))
    typer.echo(f"subscription {sub_id}: {channel} {target}")
    if secret:
        typer.echo(f"webhook signing secret (shown once; verify X-Printgate-Signature with it): {secret}")


async def _subscribe(settings: Any, dealer: str, customer: str | None, contact: str, channel: str,
                     target: str, categories: str, min_severity: str, secret: str | None) -> str:
    from alerting.delivery import check_resolves_public, subscription_cap_message, validate
    from alerting.errors import SubscriptionInvalid
    from alerting.secrets import seal
    from printgate.errors import PrintgateError
    from printgate.store import security_subscriptions as subs
    from printgate.store.tenants import get_customer, get_dealer
    from printgate.vault.kms import FileKms

    try:
        sub = validate(channel=channel, target=target, categories=categories, min_severity=min_severity,
                       secret=secret, allow_private_webhooks=settings.security_alerts.allow_private_webhooks)
        await check_resolves_public(sub, allow_private_webhooks=settings.security_alerts.allow_private_webhooks)
    except SubscriptionInvalid as exc:
        raise _fail(exc.message) from exc
    sealed = None
    if sub.secret is not None:
        try:
            sealed = await seal(FileKms(settings.gateway.vault_master_key_path), sub.secret, dealer_id=dealer,
                                target=sub.target)
        except PrintgateError as exc:
            raise _fail(exc.message) from exc
    async with _database(settings) as db, db.transaction() as s:
        if await get_dealer(s, dealer) is None:
            raise _fail(f"no dealer {dealer} (`printgate admin dealers` lists them)")
        if customer is not None:
            found = await get_customer(s, customer)
            if found is None or found.dealer_id != dealer:
                raise _fail(f"dealer {dealer} has no customer {customer}")
        cap = settings.security_alerts.max_subscriptions_per_tenant
        if await subs.count_subscriptions(s, dealer_id=dealer, customer_id=customer) >= cap:
            raise _fail(subscription_cap_message(cap, customer))
        stored = await subs.add_subscription(
            s, dealer_id=dealer, customer_id=customer, contact=contact.strip() or "security contact",
            channel=sub.channel, target=sub.target, secret=sealed, categories=sub.categories,
            min_severity=sub.min_severity, now=datetime.now(UTC), created_by=None)
        await _audit(db, s, [_event(SUBSCRIPTION_ADDED, dealer_id=dealer, customer_id=customer, details={
            "subscription": stored.id, "channel": sub.channel, "categories": list(sub.categories),
            "min_severity": sub.min_severity}, personal={"target": sub.target})])
    return stored.id


@app.command("list")
def list_subscriptions(
    dealer: Annotated[str, typer.Option(help="the dealer id")],
    customer: Annotated[str | None, typer.Option(help="only this customer's subscriptions")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    config: ConfigOpt = None,
) -> None:
    """List the subscriptions of a dealer (and its customers) or of one customer."""
    rows = asyncio.run(_list(_settings(config), dealer, customer))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("no security-alert subscriptions")
    for r in rows:
        typer.echo(f"{r['id']}\t{r['customer_id'] or '(dealer)'}\t{r['channel']}\t{r['target']}\t"
                   f"{','.join(r['categories']) or 'all'}\t>={r['min_severity']}\t"
                   f"{'enabled' if r['enabled'] else 'disabled'}\t{r['contact']}")


async def _list(settings: Any, dealer: str, customer: str | None) -> list[dict[str, Any]]:
    from alerting.engine import SEVERITY_NAMES
    from printgate.store import security_subscriptions as subs

    async with _database(settings) as db, db.session() as s:
        found = await subs.list_subscriptions(s, dealer_id=dealer, customer_id=customer)
    return [{"id": x.id, "dealer_id": x.dealer_id, "customer_id": x.customer_id, "contact": x.contact,
             "channel": x.channel, "target": x.target, "categories": list(x.categories),
             "min_severity": SEVERITY_NAMES.get(x.min_severity, str(x.min_severity)), "enabled": x.enabled}
            for x in found]


@app.command("unsubscribe")
def unsubscribe(
    subscription_id: Annotated[str, typer.Argument(help="the subscription id (`... security-alerts list`)")],
    config: ConfigOpt = None,
) -> None:
    """Remove a subscription."""
    asyncio.run(_unsubscribe(_settings(config), subscription_id))
    typer.echo(f"subscription {subscription_id} removed")


async def _unsubscribe(settings: Any, subscription_id: str) -> None:
    from printgate.store import security_subscriptions as subs

    async with _database(settings) as db, db.transaction() as s:
        found = await subs.get_subscription(s, subscription_id)
        if found is None:
            raise _fail(f"no subscription {subscription_id} (`printgate admin security-alerts list`)")
        await subs.delete_subscription(s, subscription_id)
        await _audit(db, s, [_event(SUBSCRIPTION_REMOVED, dealer_id=found.dealer_id,
                                    customer_id=found.customer_id,
                                    details={"subscription": found.id, "channel": found.channel},
                                    personal={"target": found.target})])
