"""OpenID Connect relying party per tenant: authorisation code flow with PKCE
(S256), state (one use, server-side) and nonce; ID token verified with joserfc
against the issuer's JWKS (signature, iss, aud, exp, nonce)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from portal.auth.saml import SsoIdentity
from portal.errors import OIDC_INVALID, OIDC_STATE, OIDC_TOKEN
from printgate.domain.sso import SsoPending, SsoProvider
from printgate.errors import AuthenticationFailed
from printgate.store import sso as sso_store

MFA_AMR = frozenset({"mfa", "otp", "hwk", "swk", "totp"})


class OidcConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    issuer: str
    client_id: str
    client_secret: str = ""
    scopes: str = "openid email profile"
    email_claim: str = "email"
    groups_claim: str = "groups"


def redirect_uri(public_url: str, provider_id: str) -> str:
    return f"{public_url.rstrip('/')}/sso/oidc/{provider_id}/callback"


async def _discover(client: httpx.AsyncClient, issuer: str) -> dict[str, Any]:
    r = await client.get(f"{issuer.rstrip('/')}/.well-known/openid-configuration")
    r.raise_for_status()
    meta: dict[str, Any] = r.json()
    if meta.get("issuer") != issuer:
        raise AuthenticationFailed(f"OIDC discovery of {issuer} names issuer {meta.get('issuer')!r}",
                                   code=OIDC_INVALID)
    return meta


async def begin_login(s: AsyncSession, provider: SsoProvider, public_url: str, *,
                      now: datetime, http: httpx.AsyncClient) -> str:
    cfg = OidcConfig.model_validate(provider.config)
    meta = await _discover(http, cfg.issuer)
    state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    await sso_store.add_sso_pending(s, SsoPending(state=state, provider_id=provider.id, nonce=nonce,
                                                  code_verifier=verifier, created_at=now))
    query = urlencode({
        "response_type": "code", "client_id": cfg.client_id,
        "redirect_uri": redirect_uri(public_url, provider.id), "scope": cfg.scopes,
        "state": state, "nonce": nonce, "code_challenge": challenge, "code_challenge_method": "S256",
    })
    return f"{meta['authorization_endpoint']}?{query}"


async def finish_login(s: AsyncSession, provider: SsoProvider, public_url: str, *, state: str,
                       code: str, now: datetime, http: httpx.AsyncClient,
                       pending_ttl: timedelta = timedelta(minutes=10)) -> SsoIdentity:
    pending = await sso_store.pop_sso_pending(s, state) if state else None
    if pending is None or pending.provider_id != provider.id or now - pending.created_at > pending_ttl:
        raise AuthenticationFailed("OIDC sign-in rejected: unknown, reused or expired state; "
                                   "start again from the sign-in page", code=OIDC_STATE)
    cfg = OidcConfig.model_validate(provider.config)
    meta = await _discover(http, cfg.issuer)
    r = await http.post(meta["token_endpoint"], data={
        "grant_type": "authorization_code", "code": code,
        "redirect_uri": redirect_uri(public_url, provider.id), "client_id": cfg.client_id,
        "client_secret": cfg.client_secret, "code_verifier": pending.code_verifier,
    })
    if r.status_code != 200:
        raise AuthenticationFailed(f"OIDC token endpoint refused the code ({r.status_code})",
                                   code=OIDC_TOKEN)
    id_token = r.json().get("id_token")
    if not id_token:
        raise AuthenticationFailed("OIDC token response has no id_token", code=OIDC_INVALID)
    jwks = (await http.get(meta["jwks_uri"])).json()
    try:
        token = jwt.decode(id_token, KeySet.import_key_set(jwks), algorithms=["RS256", "ES256", "PS256"])
        jwt.JWTClaimsRegistry(
            now=int(now.timestamp()), leeway=60,
            iss={"essential": True, "value": cfg.issuer},
            aud={"essential": True, "value": cfg.client_id},
            exp={"essential": True}, sub={"essential": True},
            nonce={"essential": True, "value": pending.nonce},
        ).validate(token.claims)
    except (JoseError, ValueError) as exc:
        raise AuthenticationFailed(f"OIDC ID token rejected: {exc}", code=OIDC_INVALID) from exc
    claims = token.claims
    email = str(claims.get(cfg.email_claim, "")).strip().lower()
    if "@" not in email:
        raise AuthenticationFailed(f"OIDC ID token has no e-mail claim {cfg.email_claim!r}",
                                   code=OIDC_INVALID)
    groups = claims.get(cfg.groups_claim) or []
    amr = set(claims.get("amr") or [])
    return SsoIdentity(email=email, groups=tuple(str(g) for g in groups), subject=str(claims["sub"]),
                       mfa=bool(amr & MFA_AMR))
