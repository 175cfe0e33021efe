"""Integrations (dealer administrators): the dealer's webhook endpoints — add (the secret is
shown once), send a test event, disable and enable — and the deliveries, with the dead letters
and their "Redeliver". Every change is audited (``integration.webhook.*``); docs/integrations.md.

The composition root puts the ``WebhookEndpoints`` service at ``app.state.webhook_endpoints``;
without it the page says integrations are off.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import Response

from integrations.endpoints import (
    DELIVERY_REDELIVERED,
    ENDPOINT_ADDED,
    ENDPOINT_DISABLED,
    ENDPOINT_ENABLED,
    ENDPOINT_TESTED,
    MAX_ENDPOINTS_PER_DEALER,
    WebhookEndpoints,
)
from integrations.errors import EndpointInvalid
from portal.deps import CsrfChecked, CurrentLogin, DbSession, State, require_role
from portal.forms import with_private_switch
from portal.pages import render, see_other
from printgate.domain import Outcome, Role, User
from printgate.errors import NotFound
from printgate.store import outbox

router = APIRouter(prefix="/integrations", tags=["integrations"], include_in_schema=False)  # pages and forms: not the JSON API's description
DealerAdmin = Annotated[User, Depends(require_role(Role.DEALER_ADMIN))]


def _service(request: Request) -> WebhookEndpoints:
    svc: WebhookEndpoints | None = getattr(request.app.state, "webhook_endpoints", None)
    if svc is None:
        raise HTTPException(503, "outbound integrations are not enabled on this server "
                                 "([integrations] enabled = true, then restart)")
    return svc


Service = Annotated[WebhookEndpoints, Depends(_service)]


def _dealer(user: User) -> str:
    if not user.dealer_id:
        raise HTTPException(403, "webhook endpoints belong to a dealer; sign in as a dealer administrator")
    return user.dealer_id


async def _page(request: Request, state: State, s: DbSession, login: CurrentLogin, user: User, *,
                status_code: int = 200, **extra: object) -> Response:
    dealer_id = _dealer(user)
    endpoints = await outbox.list_endpoints(s, dealer_id)
    dead = await outbox.deliveries_of_dealer(s, dealer_id, status=outbox.DEAD, limit=200)
    recent = await outbox.deliveries_of_dealer(s, dealer_id, limit=50)
    return render(state, request, "integrations.html", login=login, endpoints=endpoints, dead=dead,
                  recent=recent, kinds=outbox.EVENT_KINDS, status_code=status_code, **extra)


@router.get("")
async def integrations_page(request: Request, state: State, s: DbSession, login: CurrentLogin,
                            user: DealerAdmin, _svc: Service) -> Response:
    return await _page(request, state, s, login, user)


@router.post("/endpoints")
async def add_endpoint(request: Request, state: State, s: DbSession, login: CurrentLogin, user: DealerAdmin,
                       svc: Service, _csrf: CsrfChecked, url: Annotated[str, Form(max_length=4096)] = "",
                       description: Annotated[str, Form(max_length=200)] = "",
                       kinds: Annotated[list[str] | None, Form()] = None) -> Response:
    dealer_id = _dealer(user)
    wanted = sorted(set(kinds or []))
    try:
        checked = svc.check(url, wanted)
    except EndpointInvalid as exc:
        return await _page(request, state, s, login, user, status_code=422,
                           error=with_private_switch(exc.message, "integrations.allow_private_endpoints"),
                           form={"url": url, "description": description, "kinds": wanted})
    if len(await outbox.list_endpoints(s, dealer_id)) >= MAX_ENDPOINTS_PER_DEALER:
        return await _page(request, state, s, login, user, status_code=422,
                           error=f"at most {MAX_ENDPOINTS_PER_DEALER} webhook endpoints per dealer; "
                                 "reuse or disable one")
    endpoint_id, secret, sealed = await svc.new_secret(dealer_id)
    ep = await outbox.add_endpoint(s, endpoint_id=endpoint_id, dealer_id=dealer_id, url=checked,
                                   description=description.strip(), kinds=wanted, secret=sealed,
                                   by=user.id, now=state.clock())
    await state.record(ENDPOINT_ADDED, request=request, user=user,
                       details={"endpoint": ep.id, "url": ep.url, "kinds": list(ep.kinds) or ["*"]})
    return await _page(request, state, s, login, user, new_secret=secret, new_endpoint=ep.id)


@router.post("/endpoints/{endpoint_id}/{action}")
async def change_endpoint(request: Request, state: State, s: DbSession, login: CurrentLogin,
                          user: DealerAdmin, svc: Service, _csrf: CsrfChecked, endpoint_id: str,
                          action: str) -> Response:
    dealer_id = _dealer(user)
    try:
        if action in ("disable", "enable"):
            ep = await outbox.set_endpoint_enabled(s, dealer_id, endpoint_id, enabled=action == "enable",
                                                   now=state.clock())
            await state.record(ENDPOINT_ENABLED if ep.enabled else ENDPOINT_DISABLED, request=request,
                               user=user, details={"endpoint": ep.id, "url": ep.url})
            return see_other("/integrations")
        if action == "test":
            ep = await outbox.get_endpoint(s, dealer_id, endpoint_id)
            result = await svc.deliver_test(ep, await outbox.endpoint_secret(s, endpoint_id), user.id)
            await state.record(ENDPOINT_TESTED, request=request, user=user,
                               outcome=Outcome.SUCCESS if result.ok else Outcome.FAILURE,
                               details={"endpoint": ep.id, "status": result.status, "error": result.error[:200]})
            return await _page(request, state, s, login, user, tested=ep.id, test_result=result)
    except NotFound as exc:
        raise HTTPException(404, exc.message) from exc
    raise HTTPException(404, f"unknown action {action[:40]!r}: disable, enable or test")


@router.post("/deliveries/{delivery_id}/redeliver")
async def redeliver(request: Request, state: State, s: DbSession, user: DealerAdmin, svc: Service,
                    _csrf: CsrfChecked, delivery_id: int) -> Response:
    try:
        view = await outbox.redeliver(s, _dealer(user), delivery_id, now=state.clock())
    except NotFound as exc:
        raise HTTPException(404, exc.message) from exc
    await state.record(DELIVERY_REDELIVERED, request=request, user=user,
                       details={"delivery": delivery_id, "event": view.event_id, "endpoint": view.endpoint_id})

    async def wake() -> None:
        svc.wake()

    await state.after_commit(wake)
    return see_other("/integrations#dead-letters")
