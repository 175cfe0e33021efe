"""Single sign-on endpoints: SAML (metadata, login, ACS) and OIDC (login, callback)."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from portal.auth import browser_sessions, oidc, saml, second_factor, sso_accounts
from portal.deps import DbSession, State
from portal.errors import OIDC_ERROR
from portal.pages import render, see_other
from portal.routers.login import set_session_cookie
from portal.state import client_ip
from printgate.domain import Outcome, event_types
from printgate.domain.sso import SsoProvider
from printgate.errors import AuthenticationFailed
from printgate.store import sso as sso_store
from printgate.store import users as users_store

router = APIRouter(prefix="/sso", tags=["sso"], include_in_schema=False)  # pages and forms: not the JSON API's description


async def _provider(s: AsyncSession, provider_id: str, kind: str) -> SsoProvider:
    provider = await sso_store.get_sso_provider(s, provider_id)
    if provider is None or provider.kind != kind or not provider.enabled:
        raise HTTPException(404, f"no {kind.upper()} identity provider {provider_id}")
    return provider


async def _signed_in(request: Request, state: State, s: AsyncSession, provider: SsoProvider,
                     who: saml.SsoIdentity) -> Response:
    now = state.clock()
    user, before, after = await sso_accounts.account_for(s, provider, who)
    totp_secret = await users_store.get_totp_secret(s, user.id)
    if before != after:
        await state.record(event_types.RBAC_ROLES_CHANGED, request=request, user=user, actor=f"sso:{provider.id}",
                           details={"user": user.id, "from": sorted(before), "to": sorted(after)},
                           personal={"subject": user.email})
    mfa = provider.mfa_asserted or who.mfa
    needs_totp = not mfa and second_factor.mfa_required(user.roles, bool(totp_secret))
    stage = browser_sessions.STAGE_PASSWORD if needs_totp else browser_sessions.STAGE_FULL
    token, _ = await browser_sessions.start(
        s, user_id=user.id, stage=stage, now=now, source_ip=client_ip(request),
        auth_method=provider.kind, mfa_method="idp" if mfa else None,
    )
    await state.record(event_types.AUTH_SSO, request=request, user=user,
                       details={"provider": provider.id, "kind": provider.kind, "idp_mfa": mfa})
    target = "/devices"
    if needs_totp:
        target = "/login/verify" if totp_secret else "/mfa/enrol"
    response = see_other(target)
    set_session_cookie(state, response, token)
    return response


async def _refused(request: Request, state: State, provider_id: str, exc: AuthenticationFailed) -> Response:
    await state.record(event_types.AUTH_SSO, request=request, outcome=Outcome.FAILURE,
                       details={"provider": provider_id, "code": exc.code, "error": exc.message})
    return render(state, request, "login.html", status_code=401, error=exc.message, next="/devices",
                  providers=[])


@router.get("/saml/{provider_id}/metadata")
async def saml_metadata(state: State, s: DbSession, provider_id: str) -> Response:
    provider = await _provider(s, provider_id, "saml")
    return Response(saml.metadata_xml(provider, state.settings.public_url),
                    media_type="application/samlmetadata+xml")


@router.get("/saml/{provider_id}/login")
async def saml_login(state: State, s: DbSession, provider_id: str) -> Response:
    provider = await _provider(s, provider_id, "saml")
    return see_other(await saml.begin_login(s, provider, state.settings.public_url, now=state.clock()))


@router.post("/saml/{provider_id}/acs")
async def saml_acs(request: Request, state: State, s: DbSession, provider_id: str,
                   SAMLResponse: Annotated[str, Form()]) -> Response:
    provider = await _provider(s, provider_id, "saml")
    try:
        who = await saml.finish_login(s, provider, state.settings.public_url,
                                      saml_response=SAMLResponse, now=state.clock())
        return await _signed_in(request, state, s, provider, who)
    except AuthenticationFailed as exc:
        return await _refused(request, state, provider_id, exc)


@router.get("/oidc/{provider_id}/login")
async def oidc_login(state: State, s: DbSession, provider_id: str) -> Response:
    provider = await _provider(s, provider_id, "oidc")
    async with httpx.AsyncClient(timeout=10) as http:
        url = await oidc.begin_login(s, provider, state.settings.public_url, now=state.clock(), http=http)
    return see_other(url)


@router.get("/oidc/{provider_id}/callback")
async def oidc_callback(request: Request, state: State, s: DbSession, provider_id: str,
                        code: str = "", error: str = "") -> Response:
    provider = await _provider(s, provider_id, "oidc")
    oidc_state = request.query_params.get("state", "")
    try:
        if error:
            raise AuthenticationFailed(f"the identity provider refused the sign-in: {error}",
                                       code=OIDC_ERROR)
        async with httpx.AsyncClient(timeout=10) as http:
            who = await oidc.finish_login(s, provider, state.settings.public_url, state=oidc_state,
                                          code=code, now=state.clock(), http=http)
        return await _signed_in(request, state, s, provider, who)
    except AuthenticationFailed as exc:
        return await _refused(request, state, provider_id, exc)
