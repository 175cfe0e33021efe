"""Stored device credentials (issue 19): customer admins and dealer admins set, rotate and
erase them, and a customer admin may forbid their use. Write-only: no page or API answer ever
holds a secret (input, output and row types apart: ``CredentialIn`` in, ``CredentialPublic`` out)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from portal.deps import CsrfChecked, CurrentLogin, CurrentUser, DbSession, State
from portal.pages import render, see_other
from portal.schemas.device_credentials import (
    CredentialIn,
    CredentialPublic,
    CredentialRef,
    CredentialUse,
    Revealed,
    RevealRequestIn,
    RevealRequestOut,
)
from portal.state import Login, PortalState, client_ip
from printgate.domain import Customer, Device, Role, User, event_types
from printgate.domain.credentials import CredentialScope, LoginKind
from printgate.errors import CredentialInvalid
from printgate.store import device_credentials as store
from printgate.store.devices import dealer_of_device, list_devices_of_dealer
from printgate.store.tenants import get_customer, list_sites_of_customers
from printgate.vault import CredentialVault
from printgate.vault.vault import check_credential, normalise_target

router = APIRouter(tags=["device-credentials"])
ADMINS = frozenset({Role.CUSTOMER_ADMIN, Role.DEALER_ADMIN})


def _vault(state: PortalState) -> CredentialVault:
    if state.vault is None:
        raise HTTPException(503, "the credential vault is not configured on this portal")
    return state.vault


async def _administered(s: AsyncSession, user: User, customer_id: str, *, customer_only: bool = False) -> Customer:
    """The customer, if ``user`` administers it (its customer admin, or its dealer's admin)."""
    customer = await get_customer(s, customer_id)
    own = customer is not None and (
        (Role.CUSTOMER_ADMIN in user.roles and user.customer_id == customer.id)
        or (not customer_only and Role.DEALER_ADMIN in user.roles and user.dealer_id == customer.dealer_id))
    if customer is None or not own:
        who = "its customer administrators" if customer_only else "its customer or dealer administrators"
        raise HTTPException(403, f"only {who} manage the stored credentials of customer {customer_id}")
    return customer


async def _customers_of(s: AsyncSession, user: User) -> list[Customer]:
    from printgate.store.tenants import list_customers_of_dealer

    if user.customer_id and Role.CUSTOMER_ADMIN in user.roles:
        found = await get_customer(s, user.customer_id)
        return [found] if found else []
    if user.dealer_id and Role.DEALER_ADMIN in user.roles:
        return await list_customers_of_dealer(s, user.dealer_id)
    return []


async def _devices_of(s: AsyncSession, customer: Customer) -> list[Device]:
    """The customer's devices (its sites'), by name: the choices of a per-device credential."""
    sites = {site.id for site in await list_sites_of_customers(s, [customer.id])}
    found = [d for d, _ in await list_devices_of_dealer(s, customer.dealer_id) if d.site_id in sites]
    return sorted(found, key=lambda d: (device_label(d).lower(), d.id))


def device_label(d: Device) -> str:
    """How the picker names a device: its name (else model), address and id."""
    return f"{d.name or d.identity.model or d.identity.describe()} ({d.ip}, id {d.id})"


async def _checked_target(s: AsyncSession, customer: Customer, data: CredentialIn) -> str:
    """The credential's target as stored; a device must be one of the customer's own (CredentialInvalid)."""
    target = normalise_target(data.scope, data.target)
    if data.scope is CredentialScope.DEVICE and await dealer_of_device(s, target) != (customer.dealer_id, customer.id):
        raise CredentialInvalid(f"{customer.name} has no device with the id {target!r}: pick one of its devices "
                                "(the Device credentials page lists them; GET /api/devices gives every id)")
    return target


async def _store(state: PortalState, request: Request, s: AsyncSession, user: User, customer: Customer,
                 data: CredentialIn) -> None:
    try:
        target = await _checked_target(s, customer, data)
        check_credential(data.kind, data.account, data.password, data.profile)
    except CredentialInvalid as exc:
        raise HTTPException(422, exc.message) from exc
    vault = _vault(state)

    async def work() -> None:
        await vault.set(customer_id=customer.id, dealer_id=customer.dealer_id, scope=data.scope, target=target,
                        kind=data.kind, account=data.account, password=data.password, profile=data.profile,
                        actor=user.id, source_ip=client_ip(request))

    await state.after_commit(work)  # the vault writes in its own transaction


async def _erase(state: PortalState, request: Request, user: User, customer: Customer, ref: CredentialRef) -> None:
    try:
        target = normalise_target(ref.scope, ref.target)
    except CredentialInvalid as exc:
        raise HTTPException(422, exc.message) from exc
    vault = _vault(state)

    async def work() -> None:
        await vault.erase(customer_id=customer.id, dealer_id=customer.dealer_id, scope=ref.scope, target=target,
                          actor=user.id, source_ip=client_ip(request))
        await state.broker.drop_credentials(customer.id, reason="a stored device credential was erased",
                                            actor=user.id)

    await state.after_commit(work)


async def _forbid(state: PortalState, request: Request, user: User, customer: Customer, forbidden: bool) -> None:
    vault = _vault(state)

    async def work() -> None:
        await vault.set_forbidden(customer_id=customer.id, dealer_id=customer.dealer_id, forbidden=forbidden,
                                  actor=user.id, source_ip=client_ip(request))
        if forbidden:
            await state.broker.drop_credentials(customer.id, reason="the customer forbade stored device credentials",
                                                actor=user.id)

    await state.after_commit(work)


# --- pages --------------------------------------------------------------------------
@router.get("/credentials", include_in_schema=False)
async def credentials_page(request: Request, state: State, s: DbSession, login: CurrentLogin,
                           customer: Annotated[str | None, Query(max_length=64)] = None) -> Response:
    return await _page(request, state, s, login, customer)


async def _page(request: Request, state: PortalState, s: AsyncSession, login: Login, customer: str | None, *,
                error: str | None = None, sent: dict[str, str] | None = None) -> Response:
    """The page; after a refused form with what was sent and the error beside the form."""
    customers = await _customers_of(s, login.user)
    if not customers:
        raise HTTPException(403, "only customer and dealer administrators manage stored device credentials")
    chosen = next((c for c in customers if c.id == customer), customers[0])
    devices = await _devices_of(s, chosen)
    return render(state, request, "credentials.html", login=login, customers=customers, customer=chosen,
                  stored=await store.list_current(s, chosen.id),
                  forbidden=await store.credentials_forbidden(s, chosen.id),
                  may_forbid=Role.CUSTOMER_ADMIN in login.user.roles and login.user.customer_id == chosen.id,
                  scopes=list(CredentialScope), kinds=list(LoginKind),
                  devices=[(d.id, device_label(d)) for d in devices], names={d.id: device_label(d) for d in devices},
                  models=sorted({d.identity.model for d in devices if d.identity.model}),
                  error=error, sent=sent or {}, status_code=422 if error else 200)


@router.post("/credentials", include_in_schema=False)
async def set_from_form(
    request: Request, state: State, s: DbSession, login: CurrentLogin, _csrf: CsrfChecked,
    customer_id: Annotated[str, Form(max_length=64)], scope: Annotated[CredentialScope, Form()],
    kind: Annotated[LoginKind, Form()], account: Annotated[str, Form(min_length=1, max_length=128)],
    password: Annotated[str, Form(min_length=1, max_length=256)],
    target: Annotated[str, Form(max_length=256)] = "", profile: Annotated[str, Form(max_length=64)] = "",
    device: Annotated[str, Form(max_length=256)] = "", model: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    """The form names the device in ``device`` (a picker of the customer's devices) and the model in
    ``model``; ``target`` (the API's name for either) still works."""
    customer = await _administered(s, login.user, customer_id)
    chosen = {CredentialScope.DEVICE: device, CredentialScope.MODEL: model}.get(scope, "") or target
    data = CredentialIn(customer_id=customer_id, scope=scope, target=chosen, kind=kind, account=account,
                        password=password, profile=profile)
    try:
        await _checked_target(s, customer, data)
    except CredentialInvalid as exc:  # the page again, the choices kept (never the password)
        return await _page(request, state, s, login, customer.id, error=exc.message, sent={
            "scope": scope.value, "device": device or target, "model": model or target, "kind": kind.value,
            "account": account, "profile": profile})
    await _store(state, request, s, login.user, customer, data)
    return see_other(f"/credentials?customer={customer.id}")


@router.post("/credentials/erase", include_in_schema=False)
async def erase_from_form(
    request: Request, state: State, s: DbSession, login: CurrentLogin, _csrf: CsrfChecked,
    customer_id: Annotated[str, Form(max_length=64)], scope: Annotated[CredentialScope, Form()],
    target: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    customer = await _administered(s, login.user, customer_id)
    await _erase(state, request, login.user, customer, CredentialRef(customer_id=customer_id, scope=scope,
                                                                     target=target))
    return see_other(f"/credentials?customer={customer.id}")


@router.post("/credentials/use", include_in_schema=False)
async def use_from_form(
    request: Request, state: State, s: DbSession, login: CurrentLogin, _csrf: CsrfChecked,
    customer_id: Annotated[str, Form(max_length=64)], forbidden: Annotated[bool, Form()] = False,
) -> Response:
    customer = await _administered(s, login.user, customer_id, customer_only=True)
    await _forbid(state, request, login.user, customer, forbidden)
    return see_other(f"/credentials?customer={customer.id}")


# --- API ----------------------------------------------------------------------------
@router.get("/api/device-credentials")
async def list_api(s: DbSession, user: CurrentUser,
                   customer_id: Annotated[str, Query(min_length=1, max_length=64)]) -> list[CredentialPublic]:
    """The stored credentials of a customer: never a secret."""
    await _administered(s, user, customer_id)
    return [CredentialPublic.of(c) for c in await store.list_current(s, customer_id)]


@router.put("/api/device-credentials", status_code=204)
async def set_api(request: Request, state: State, s: DbSession, user: CurrentUser, body: CredentialIn) -> Response:
    """Set or rotate a credential (a new version); answers 204, never the secret."""
    customer = await _administered(s, user, body.customer_id)
    await _store(state, request, s, user, customer, body)
    return Response(status_code=204)


@router.post("/api/device-credentials/erase", status_code=204)
async def erase_api(request: Request, state: State, s: DbSession, user: CurrentUser, body: CredentialRef) -> Response:
    """Erase every version of one stored credential."""
    customer = await _administered(s, user, body.customer_id)
    await _erase(state, request, user, customer, body)
    return Response(status_code=204)


@router.put("/api/device-credentials/use", status_code=204)
async def use_api(request: Request, state: State, s: DbSession, user: CurrentUser, body: CredentialUse) -> Response:
    """A customer administrator allows or forbids signing in with stored credentials."""
    customer = await _administered(s, user, body.customer_id, customer_only=True)
    await _forbid(state, request, user, customer, body.forbidden)
    return Response(status_code=204)


# --- break glass: revealing a stored password needs the customer's approval -------------------
@router.post("/api/device-credentials/reveal-requests", status_code=201)
async def request_reveal(request: Request, state: State, s: DbSession, user: CurrentUser,
                         body: RevealRequestIn) -> RevealRequestOut:
    """Ask the device's customer to approve revealing its stored password (existing approval flow)."""
    import secrets as _secrets

    from printgate.store import approvals
    from printgate.store.devices import dealer_of_device

    owner = await dealer_of_device(s, body.device_id)
    if owner is None or owner[0] != user.dealer_id or not user.roles & {Role.DEALER_ADMIN, Role.TECHNICIAN}:
        raise HTTPException(404, "no such device of your organisation")
    now = state.clock()
    approval = await approvals.request_approval(
        s, approval_id=_secrets.token_hex(8), user_id=user.id, device_id=body.device_id, customer_id=owner[1],
        reason=f"Reveal the stored device password: {body.reason.strip()}", now=now)
    reveal_id = _secrets.token_hex(8)
    await store.add_reveal(s, reveal_id=reveal_id, approval_id=approval.id, user_id=user.id,
                           device_id=body.device_id, customer_id=owner[1], now=now)
    await state.record(event_types.VAULT_REVEAL_REQUESTED, request=request, user=user, device_id=body.device_id,
                       customer_id=owner[1], details={"approval_id": approval.id, "request_id": reveal_id})
    return RevealRequestOut(request_id=reveal_id, approval_id=approval.id, status=approval.status)


@router.post("/api/device-credentials/reveal-requests/{request_id}/reveal")
async def reveal(request: Request, state: State, s: DbSession, user: CurrentUser, request_id: str) -> Response:
    """The stored password, once, while the customer's approval is valid; audited."""
    from fastapi.responses import JSONResponse

    from printgate.store import approvals
    from printgate.store.devices import get_device

    row = await store.get_reveal(s, request_id)
    if row is None or row.user_id != user.id:
        raise HTTPException(404, "no such reveal request of yours")
    approval = await approvals.get_approval(s, row.approval_id)
    now = state.clock()
    if approval is None or approval.status != "approved" or approval.approved_until is None:
        raise HTTPException(403, "the customer has not approved this request (yet)")
    if now >= approval.approved_until:
        raise HTTPException(403, "the customer's approval has expired: request again")
    if row.revealed_at is not None or not await store.mark_revealed(s, request_id, now):
        raise HTTPException(409, "this request was revealed already: request again")
    device = await get_device(s, row.device_id)
    customer = await get_customer(s, row.customer_id)
    login = await _vault(state).login_for(row.customer_id, row.device_id, device.identity.model if device else None)
    await state.record(event_types.VAULT_CREDENTIAL_REVEALED, request=request, user=user, device_id=row.device_id,
                       customer_id=row.customer_id, dealer_id=customer.dealer_id if customer else None,
                       details={"approval_id": approval.id, "request_id": request_id, "found": login is not None,
                                **({"scope": login.scope.value, "account": login.account,
                                    "version": login.version} if login else {})})
    if login is None:
        raise HTTPException(404, "no credential is stored for this device")
    body = Revealed(account=login.account, password=login.password, kind=login.kind, version=login.version,
                    approved_until=approval.approved_until.isoformat())
    return JSONResponse(body.model_dump(mode="json"), headers={"Cache-Control": "no-store"})
