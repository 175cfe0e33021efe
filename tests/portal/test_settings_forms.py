"""Wrong values in the fleet page's settings forms (newcomer finding 13): the fleet page again, the
form open, what was typed kept and the message beside the field it is about; nothing saved."""

from __future__ import annotations

import html
import re
from contextlib import aclosing

from printgate.domain import Role
from printgate.store import readings_history as history
from printgate.store.db import Database
from printgate.store.readings_state import thresholds_of_tenant
from printgate.testing.portal import csrf_of
from tests.fleet.conftest import fleet_app, signed_in
from tests.fleet.conftest import (
    fleet_db as fleet_db,  # the fixture: a seeded store on both backends
)


def _error(page: str, element_id: str) -> str | None:
    m = re.search(rf'<p class="field-error" id="{element_id}">([^<]*)</p>', page)
    return html.unescape(m.group(1)) if m else None


async def test_wrong_thresholds_and_retention_come_back_on_the_page_beside_their_fields(fleet_db: Database) -> None:
    fp = fleet_app(fleet_db)
    client, _ = await signed_in(fp, Role.DEALER_ADMIN)
    async with aclosing(client):
        token = csrf_of((await client.get("/fleet")).text)
        r = await client.post("/fleet/thresholds", data={"csrf_token": token, "warning_percent": "5",
                                                         "critical_percent": "15"})
        assert r.status_code == 422 and 'id="fleet-filter"' in r.text  # the fleet page, not a bare error page
        assert re.search(r'<details open><summary>Change the supply thresholds', r.text)
        assert "must be at or below warning (5 %)" in (_error(r.text, "f-critical_percent-error") or "")
        assert 'aria-describedby="f-critical_percent-error"' in r.text
        assert re.search(r'name="warning_percent"[^>]*value="5"', r.text)
        assert re.search(r'name="critical_percent"[^>]*value="15"', r.text)
        r = await client.post("/fleet/thresholds", data={"csrf_token": token, "warning_percent": "150",
                                                         "critical_percent": "ten"})
        assert r.status_code == 422
        assert _error(r.text, "f-warning_percent-error") == "a percentage from 0 to 100, not 150"
        assert _error(r.text, "f-critical_percent-error") == "the critical level must be a whole number, not 'ten'"
        r = await client.post("/fleet/retention", data={"csrf_token": token, "days": "3"})
        assert r.status_code == 422 and 'id="fleet-filter"' in r.text
        assert re.search(r'<details open><summary>Change how long readings are kept', r.text)
        assert _error(r.text, "f-days-error") == "keep readings 7 to 3650 days, not 3: e.g. 400"
        assert re.search(r'name="days"[^>]*value="3"', r.text)
        assert _error(r.text, "f-critical_percent-error") is None  # only the form sent shows an error
    async with fleet_db.session() as s:
        assert (await thresholds_of_tenant(s, "d1"))[1] is False  # still the defaults
        assert await history.retention_of(s, "d1") == (history.DEFAULT_RETENTION_DAYS, False)
