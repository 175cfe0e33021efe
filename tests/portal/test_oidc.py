"""OIDC against a small test IdP started here (real HTTP on loopback, real
RS256 JWT signing with joserfc): PKCE, state and nonce are enforced."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from aiohttp import web
from joserfc import jwt
from joserfc.jwk import RSAKey

from lab.ports import free_tcp_port
from printgate.domain.sso import SsoProvider
from printgate.store.sso import add_sso_provider
from tests.portal.conftest import Portal


class StubOidcIdp:
    """Authorisation code flow with auto-consent for ``self.email``."""

    def __init__(self, clock) -> None:  # type: ignore[no-untyped-def]
        self.clock = clock  # the portal's clock: tokens are fresh in its time
        self.port = free_tcp_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
        self.rogue_key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
        self.codes: dict[str, dict] = {}
        self.email, self.groups, self.amr = "oidc-tech@example.org", ["techs"], ["pwd", "mfa"]
        self.tamper: str | None = None  # "nonce" | "signature" | "audience"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self.discovery)
        app.router.add_get("/authorize", self.authorize)
        app.router.add_post("/token", self.token)
        app.router.add_get("/jwks", self.jwks)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def discovery(self, _: web.Request) -> web.Response:
        return web.json_response({"issuer": self.issuer, "authorization_endpoint": f"{self.issuer}/authorize",
                                  "token_endpoint": f"{self.issuer}/token", "jwks_uri": f"{self.issuer}/jwks"})

    async def authorize(self, req: web.Request) -> web.Response:
        q = req.query
        assert q["code_challenge_method"] == "S256" and q["response_type"] == "code"
        code = secrets.token_urlsafe(16)
        self.codes[code] = dict(q)
        raise web.HTTPFound(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}")

    async def token(self, req: web.Request) -> web.Response:
        form = await req.post()
        grant = self.codes.pop(str(form["code"]), None)
        if grant is None or form["client_secret"] != "s3cret":
            return web.json_response({"error": "invalid_grant"}, status=400)
        digest = hashlib.sha256(str(form["code_verifier"]).encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant["code_challenge"]:
            return web.json_response({"error": "invalid_grant", "error_description": "PKCE"}, status=400)
        now = int(self.clock().timestamp())
        claims = {"iss": self.issuer, "sub": "sub-1", "aud": grant["client_id"], "iat": now,
                  "exp": now + 300, "nonce": grant["nonce"], "email": self.email,
                  "groups": self.groups, "amr": self.amr}
        if self.tamper == "nonce":
            claims["nonce"] = "something-else"
        if self.tamper == "audience":
            claims["aud"] = "another-client"
        key = self.rogue_key if self.tamper == "signature" else self.key
        token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key)
        return web.json_response({"access_token": "x", "token_type": "Bearer", "id_token": token})

    async def jwks(self, _: web.Request) -> web.Response:
        return web.json_response({"keys": [self.key.as_dict(private=False)]})


@pytest.fixture(scope="session")
async def oidc_idp(portal: Portal) -> AsyncIterator[StubOidcIdp]:
    idp = StubOidcIdp(portal.clock)
    await idp.start()
    async with portal.db.transaction() as s:
        await add_sso_provider(s, SsoProvider(
            id="p-oidc", kind="oidc", name="Test OIDC", dealer_id="d1",
            config={"issuer": idp.issuer, "client_id": "printgate", "client_secret": "s3cret"},
            role_map={"techs": "technician"}, default_roles=()))
    yield idp
    await idp.runner.cleanup()


async def run_flow(portal: Portal, client: httpx.AsyncClient) -> tuple[httpx.Response, str]:
    start = await client.get("/sso/oidc/p-oidc/login")
    assert start.status_code == 303
    params = parse_qs(urlsplit(start.headers["location"]).query)
    assert params["code_challenge_method"] == ["S256"] and params["nonce"] and params["state"]
    async with httpx.AsyncClient() as browser:
        at_idp = await browser.get(start.headers["location"])
    callback = at_idp.headers["location"]
    assert callback.startswith(f"{portal.url}/sso/oidc/p-oidc/callback")
    return await client.get(callback), callback


async def test_oidc_login_with_idp_mfa_gives_a_full_technician_session(
    portal: Portal, oidc_idp: StubOidcIdp, client: httpx.AsyncClient
) -> None:
    oidc_idp.tamper = None
    r, callback = await run_flow(portal, client)
    assert r.status_code == 303 and r.headers["location"] == "/devices", r.text
    page = await client.get("/devices")
    assert page.status_code == 200 and "Open web page" in page.text
    # the same callback (state) again is refused
    again = await client.get(callback)
    assert again.status_code == 401 and "state" in again.text


@pytest.mark.parametrize(("tamper", "fragment"), [("nonce", "nonce"), ("signature", "ID token rejected"),
                                                  ("audience", "aud")])
async def test_oidc_id_token_defects_are_refused(portal: Portal, oidc_idp: StubOidcIdp,
                                                 client: httpx.AsyncClient, tamper: str, fragment: str) -> None:
    oidc_idp.tamper = tamper
    try:
        r, _ = await run_flow(portal, client)
    finally:
        oidc_idp.tamper = None
    assert r.status_code == 401 and fragment in r.text
    assert (await client.get("/devices")).status_code == 303


async def test_oidc_callback_with_forged_state_is_refused(portal: Portal, oidc_idp: StubOidcIdp,
                                                          client: httpx.AsyncClient) -> None:
    r = await client.get("/sso/oidc/p-oidc/callback?code=abc&state=forged")
    assert r.status_code == 401 and "state" in r.text
