"""Device credentials name a device of the customer's own, picked from a list (newcomer finding 3):
text that is no device of the customer ("Brother HL-5370DW series", another customer's device id)
is refused on the page (the form again, with what was chosen, never the password) and in the API."""

from __future__ import annotations

import contextlib
import re

from printgate.domain import Role
from printgate.testing.portal import csrf_of
from tests.vault.test_portal_credentials import SECRET, Served, _signed_in
from tests.vault.test_portal_credentials import (
    portal as portal,  # the fixture: c1 has dev1; c2 none; c3 is d2's
)

FORM = {"customer_id": "c1", "scope": "device", "kind": "form", "account": "admin", "password": SECRET}


async def test_the_page_offers_the_customers_devices_and_refuses_any_other_id(portal: Served) -> None:
    from printgate.testing.tenancy import Tenancy

    await Tenancy().site("s3", "c3").agent("a3", "s3").device("dev-foreign", "s3", "a3", "127.0.20.20").save(portal.db)
    client, _ = await _signed_in(portal, Role.DEALER_ADMIN)
    async with contextlib.aclosing(client):
        page = await client.get("/credentials", params={"customer": "c1"})
        picker = re.search(r'<select id="device" name="device">(.*?)</select>', page.text, re.S)
        assert picker is not None
        assert re.findall(r'<option value="([^"]*)"', picker.group(1)) == ["dev1"]
        assert "127.0.20.19" in picker.group(1) and "id dev1" in picker.group(1)
        for wrong in ("Brother HL-5370DW series", "no-such-device-xyz", "dev-foreign"):
            r = await client.post("/credentials", data={**FORM, "device": wrong, "csrf_token": csrf_of(page.text)})
            assert r.status_code == 422, r.text[:300]
            error = re.search(r'<p class="error" id="credential-error" role="alert">([^<]*)</p>', r.text)
            assert error is not None and "has no device with the id" in error.group(1)
            assert "pick one of its devices" in error.group(1)
            assert 'id="set-credential"' in r.text and SECRET not in r.text
            assert 'value="admin"' in r.text  # the account typed stays
        r = await client.post("/credentials", data={**FORM, "device": "dev1", "csrf_token": csrf_of(page.text)})
        assert r.status_code == 303
        listed = await client.get("/credentials", params={"customer": "c1"})
        assert re.search(r'device <span title="device id dev1">[^<]*127\.0\.20\.19', listed.text)
        # the API names the device as `target`: the same refusal
        api = await client.put("/api/device-credentials", json={**FORM, "target": "no-such-device-xyz"})
        assert api.status_code == 422 and "has no device with the id" in api.text
        api = await client.put("/api/device-credentials", json={**FORM, "customer_id": "c2", "target": "dev1"})
        assert api.status_code == 422  # c2 is the dealer's too, but dev1 is c1's
    assert [c.target for c in await portal.vault.listing("c1")] == ["dev1"]
    assert await portal.vault.listing("c2") == []
