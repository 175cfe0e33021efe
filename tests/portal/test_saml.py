"""SAML SP against a REAL SimpleSAMLphp IdP on loopback: login works; tampered,
unsigned, replayed, wrong-audience and expired assertions are refused."""

from __future__ import annotations

import base64
import re
import shutil
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from lxml import etree
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from printgate.domain.sso import SsoProvider
from printgate.store.sso import add_sso_provider
from tests.portal.conftest import Portal
from tests.portal.saml_idp import SimpleSamlPhp, idp_login, make_keypair

NS = {"samlp": "urn:oasis:names:tc:SAML:2.0:protocol", "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
      "ds": "http://www.w3.org/2000/09/xmldsig#"}


def _pem_body(pem: str) -> str:
    return "".join(line for line in pem.splitlines() if "-----" not in line)


@pytest.fixture(scope="session")
async def saml_idp(portal: Portal, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict]:
    if shutil.which("php") is None:
        import os
        if os.environ.get("CI"):
            raise RuntimeError("php missing: scripts/system-deps.sh installs simplesamlphp")
        pytest.skip("php / simplesamlphp not installed")
    root = tmp_path_factory.mktemp("ssp")
    sp = f"{portal.url}/sso/saml/p-saml"
    idp = SimpleSamlPhp(root, {f"{sp}/metadata": f"{sp}/acs"})
    await __import__("asyncio").to_thread(idp.start)
    key, cert = make_keypair(root / "cert")
    crafted_md = re.sub(r"<ds:X509Certificate>[^<]+</ds:X509Certificate>",
                        f"<ds:X509Certificate>{_pem_body(cert)}</ds:X509Certificate>", idp.metadata)
    async with portal.db.transaction() as s:
        for pid, md in (("p-saml", idp.metadata), ("p-crafted", crafted_md)):
            await add_sso_provider(s, SsoProvider(
                id=pid, kind="saml", name=f"SSP {pid}", dealer_id="d1", config={"idp_metadata_xml": md},
                role_map={"member": "viewer"}, default_roles=()))
    yield {"idp": idp, "key": key, "cert": cert}
    idp.stop()


async def fresh_response(portal: Portal, client: httpx.AsyncClient, user: str = "student") -> tuple[str, str]:
    r = await client.get("/sso/saml/p-saml/login")
    assert r.status_code == 303 and "SAMLRequest=" in r.headers["location"]
    return await idp_login(r.headers["location"], user, f"{user}pass")


async def test_saml_login_through_simplesamlphp_signs_in_with_mapped_role(
    portal: Portal, saml_idp: dict, client: httpx.AsyncClient
) -> None:
    acs, response = await fresh_response(portal, client)
    assert acs == f"{portal.url}/sso/saml/p-saml/acs"
    r = await client.post(acs, data={"SAMLResponse": response})
    assert r.status_code == 303 and r.headers["location"] == "/devices", r.text
    page = await client.get("/devices")
    assert page.status_code == 200 and "student@example.org" in page.text
    ok = [e for e in portal.audit.of("auth.sso") if e.actor == "student@example.org"]
    assert ok and ok[-1].outcome == "success"
    # replaying the very same response is refused
    again = await client.post(acs, data={"SAMLResponse": response})
    assert again.status_code == 401 and ("replay" in again.text or "unsolicited" in again.text)


async def test_saml_metadata_endpoint_serves_sp_metadata(portal: Portal, saml_idp: dict,
                                                         client: httpx.AsyncClient) -> None:
    r = await client.get("/sso/saml/p-saml/metadata")
    assert r.status_code == 200 and "EntityDescriptor" in r.text
    assert f"{portal.url}/sso/saml/p-saml/acs" in r.text


async def test_tampered_saml_assertion_is_refused(portal: Portal, saml_idp: dict,
                                                   client: httpx.AsyncClient) -> None:
    acs, response = await fresh_response(portal, client)
    xml = base64.b64decode(response).decode()
    assert "student@example.org" in xml
    forged = xml.replace("student@example.org", "boss@example.org")
    r = await client.post(acs, data={"SAMLResponse": base64.b64encode(forged.encode()).decode()})
    assert r.status_code == 401 and "ignature" in r.text
    assert "boss@example.org" not in [e.actor for e in portal.audit.of("auth.sso")]


async def test_unsigned_saml_assertion_is_refused(portal: Portal, saml_idp: dict,
                                                   client: httpx.AsyncClient) -> None:
    acs, response = await fresh_response(portal, client)
    doc = etree.fromstring(base64.b64decode(response))
    for sig in doc.findall(".//ds:Signature", NS):
        sig.getparent().remove(sig)
    r = await client.post(acs, data={"SAMLResponse": base64.b64encode(etree.tostring(doc)).decode()})
    assert r.status_code == 401 and "not signed" in r.text.lower()


async def _crafted(portal: Portal, saml_idp: dict, client: httpx.AsyncClient, *,
                   audience: str | None = None, expired: bool = False) -> httpx.Response:
    """A real IdP response re-targeted to p-crafted and re-signed with the test key
    that p-crafted trusts; only the named defect differs from a valid one."""
    _, response = await fresh_response(portal, client)
    start = await client.get("/sso/saml/p-crafted/login")
    req = parse_qs(urlsplit(start.headers["location"]).query)["SAMLRequest"][0]
    req_xml = zlib.decompress(base64.b64decode(req), -15)
    request_id = etree.fromstring(req_xml).get("ID")
    acs = f"{portal.url}/sso/saml/p-crafted/acs"
    entity = f"{portal.url}/sso/saml/p-crafted/metadata"
    doc = etree.fromstring(base64.b64decode(response))
    for sig in doc.findall(".//ds:Signature", NS):
        sig.getparent().remove(sig)
    doc.set("Destination", acs)
    doc.set("InResponseTo", request_id)
    for scd in doc.findall(".//saml:SubjectConfirmationData", NS):
        scd.set("Recipient", acs)
        scd.set("InResponseTo", request_id)
    for name_id in doc.findall(".//saml:NameID", NS):
        if name_id.get("SPNameQualifier"):
            name_id.set("SPNameQualifier", entity)
    for aud in doc.findall(".//saml:Audience", NS):
        aud.text = audience or entity
    if expired:
        past = (datetime.now(UTC) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for el in doc.iter():
            if el.get("NotOnOrAfter"):
                el.set("NotOnOrAfter", past)
    assertion = doc.find("saml:Assertion", NS)
    signed = OneLogin_Saml2_Utils.add_sign(etree.tostring(assertion), saml_idp["key"], saml_idp["cert"])
    doc.replace(assertion, etree.fromstring(signed if isinstance(signed, bytes) else signed.encode()))
    return await client.post(acs, data={"SAMLResponse": base64.b64encode(etree.tostring(doc)).decode()})


async def test_crafted_response_with_everything_right_is_accepted(
    portal: Portal, saml_idp: dict, client: httpx.AsyncClient
) -> None:
    # proves the crafting itself is sound, so the two refusals below are about their defect
    r = await _crafted(portal, saml_idp, client)
    assert r.status_code == 303, r.text


async def test_saml_assertion_for_another_audience_is_refused(
    portal: Portal, saml_idp: dict, client: httpx.AsyncClient
) -> None:
    r = await _crafted(portal, saml_idp, client, audience="https://evil.example/sp")
    assert r.status_code == 401 and "audience" in r.text.lower()


async def test_expired_saml_assertion_is_refused(portal: Portal, saml_idp: dict,
                                                  client: httpx.AsyncClient) -> None:
    r = await _crafted(portal, saml_idp, client, expired=True)
    assert r.status_code == 401 and "expired" in r.text.lower()
