"""SAML 2.0 service provider per tenant (python3-saml), strict: signed
assertions required, audience/recipient/time checked by the library, request
ids one-use (no unsolicited responses), assertion ids in a replay cache."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from portal.errors import SAML_INVALID, SAML_REPLAY, SAML_UNSOLICITED
from printgate.domain.sso import SsoPending, SsoProvider
from printgate.errors import AuthenticationFailed
from printgate.store import sso as sso_store


class SamlConfig(BaseModel):
    """``sso_providers.config`` of a SAML provider."""

    model_config = ConfigDict(extra="forbid")
    idp_metadata_xml: str
    sp_cert: str = ""
    sp_key: str = ""
    email_attribute: str = "mail"
    groups_attribute: str = "eduPersonAffiliation"


@dataclass(frozen=True, slots=True)
class SsoIdentity:
    """What an IdP told us about the person (SAML or OIDC)."""

    email: str
    groups: tuple[str, ...]
    subject: str
    mfa: bool = False


def sp_urls(public_url: str, provider_id: str) -> tuple[str, str]:
    base = public_url.rstrip("/")
    return f"{base}/sso/saml/{provider_id}/metadata", f"{base}/sso/saml/{provider_id}/acs"


def saml_settings(provider: SsoProvider, public_url: str) -> dict[str, Any]:
    cfg = SamlConfig.model_validate(provider.config)
    idp = OneLogin_Saml2_IdPMetadataParser.parse(cfg.idp_metadata_xml)
    entity_id, acs = sp_urls(public_url, provider.id)
    signed_requests = bool(cfg.sp_key)
    return {
        "strict": True,
        "debug": False,
        "sp": {
            "entityId": entity_id,
            "assertionConsumerService": {
                "url": acs, "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"},
            "NameIDFormat": "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
            "x509cert": cfg.sp_cert,
            "privateKey": cfg.sp_key,
        },
        "idp": idp["idp"],
        "security": {
            "authnRequestsSigned": signed_requests,
            "wantAssertionsSigned": True,
            "wantMessagesSigned": False,
            "wantNameId": True,
            "rejectDeprecatedAlgorithm": True,
            "requestedAuthnContext": False,
        },
    }


def request_data(url: str, *, get: dict[str, str], post: dict[str, str]) -> dict[str, Any]:
    parts = urlsplit(url)
    https = parts.scheme == "https"
    return {
        "https": "on" if https else "off",
        "http_host": parts.hostname or "",
        "server_port": str(parts.port or (443 if https else 80)),
        "script_name": parts.path,
        "get_data": get,
        "post_data": post,
    }


async def begin_login(
    s: AsyncSession, provider: SsoProvider, public_url: str, *, now: datetime
) -> str:
    """The IdP URL to send the browser to; remembers the AuthnRequest id (one use)."""
    _, acs = sp_urls(public_url, provider.id)
    auth = OneLogin_Saml2_Auth(request_data(acs, get={}, post={}), saml_settings(provider, public_url))
    url: str = auth.login()
    await sso_store.add_sso_pending(s, SsoPending(state=auth.get_last_request_id(),
                                                  provider_id=provider.id, created_at=now))
    return url


async def finish_login(
    s: AsyncSession, provider: SsoProvider, public_url: str, *, saml_response: str, now: datetime,
    pending_ttl: timedelta = timedelta(minutes=10),
) -> SsoIdentity:
    """Validate a posted SAMLResponse; raise ``AuthenticationFailed`` saying why."""
    _, acs = sp_urls(public_url, provider.id)
    auth = OneLogin_Saml2_Auth(request_data(acs, get={}, post={"SAMLResponse": saml_response}),
                               saml_settings(provider, public_url))
    try:
        auth.process_response()
    except Exception as exc:  # malformed input: the library raises various types
        raise AuthenticationFailed(f"SAML response rejected: {exc}", code=SAML_INVALID) from exc
    errors = auth.get_errors()
    if errors or not auth.is_authenticated():
        reason = auth.get_last_error_reason() or ", ".join(errors) or "not authenticated"
        raise AuthenticationFailed(f"SAML response rejected: {reason}", code=SAML_INVALID)
    in_response_to = auth.get_last_response_in_response_to()
    pending = await sso_store.pop_sso_pending(s, in_response_to) if in_response_to else None
    if pending is None or pending.provider_id != provider.id or now - pending.created_at > pending_ttl:
        raise AuthenticationFailed(
            "SAML response rejected: it answers no sign-in started here (unsolicited or replayed); "
            "start again from the sign-in page", code=SAML_UNSOLICITED)
    assertion_id = auth.get_last_assertion_id()
    not_after = auth.get_last_assertion_not_on_or_after()
    expires = datetime.fromtimestamp(not_after, UTC) if not_after else now + timedelta(hours=1)
    if not assertion_id or not await sso_store.remember_once(
            s, f"saml:{provider.id}:{assertion_id}", expires_at=expires, now=now):
        raise AuthenticationFailed("SAML response rejected: assertion already used (replay)",
                                   code=SAML_REPLAY)
    cfg = SamlConfig.model_validate(provider.config)
    attrs = auth.get_attributes()
    emails = attrs.get(cfg.email_attribute) or []
    email = (emails[0] if emails else auth.get_nameid() or "").strip().lower()
    if "@" not in email:
        raise AuthenticationFailed(
            f"SAML response rejected: no e-mail in attribute {cfg.email_attribute!r}", code=SAML_INVALID)
    return SsoIdentity(email=email, groups=tuple(attrs.get(cfg.groups_attribute) or ()),
                       subject=auth.get_nameid() or email)


def metadata_xml(provider: SsoProvider, public_url: str) -> str:
    from onelogin.saml2.settings import OneLogin_Saml2_Settings

    settings = OneLogin_Saml2_Settings(saml_settings(provider, public_url), sp_validation_only=True)
    xml = settings.get_sp_metadata()
    return xml.decode() if isinstance(xml, bytes) else str(xml)
