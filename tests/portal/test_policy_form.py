"""The dealer admin edits the access policy as forms: limits, rules added (previewed first
through ``policy explain``, then saved as a new audited version) and removed; bad values are
named and nothing is saved."""

from __future__ import annotations

import re

import httpx

from printgate.domain import Role
from printgate.store import rule_sets
from printgate.testing.portal import create_user, csrf_of, sign_in
from tests.portal.conftest import Portal


async def test_rules_are_added_with_a_preview_and_removed_as_forms(portal: Portal, client: httpx.AsyncClient) -> None:
    admin, secret = await create_user(portal.db, Role.DEALER_ADMIN, dealer="d2")  # d2: a policy of its own
    tech, _ = await create_user(portal.db, Role.TECHNICIAN, dealer="d2")
    await sign_in(client, portal, admin, secret)
    ask = {"preview_user": tech.id, "preview_device": "dev-c-other", "preview_ip": "192.0.2.7"}

    page = await client.get("/admin/policy", params=ask)
    assert page.status_code == 200
    assert '<label for="l-session_max_minutes">Longest session (minutes)</label>' in page.text
    assert re.search(r'id="preview-result"[^>]*>\s*<p><strong>Allowed</strong>', page.text), page.text
    assert f"printgate policy explain --user {tech.id} --device dev-c-other --source-ip 192.0.2.7" in page.text

    form = {"csrf_token": csrf_of(page.text), **ask, "kind": "source_ip", "rule_id": "office-only",
            "cidrs": "10.0.0.0/8, 172.16.0.0/12", "scope": "customer:c-other", "description": "office network"}
    preview = await client.post("/admin/policy/rules", data={**form, "action": "preview"})
    assert preview.status_code == 200 and 'id="draft-notice"' in preview.text
    assert re.search(r'<strong>Refused</strong> \(with the new rule\)', preview.text)
    assert 'data-code="source_ip.not_allowed"' in preview.text
    async with portal.db.session() as s:
        assert await rule_sets.load_ruleset(s, "d2") is None  # a preview saves nothing

    saved = await client.post("/admin/policy/rules", data={**form, "action": "save"})
    assert saved.status_code == 303
    page = await client.get("/admin/policy", params=ask)
    row = re.search(r'<tr data-rule-id="office-only">(.*?)</tr>', page.text, re.S)
    assert row and "only from 10.0.0.0/8, 172.16.0.0/12, at customer Customer c-other" in row.group(1)
    assert 'data-code="source_ip.not_allowed"' in page.text  # the saved policy now refuses
    async with portal.db.session() as s:
        body = await rule_sets.load_ruleset(s, "d2")
    assert body and body["version"] == 1 and body["rules"][0]["scope"]["customer_id"] == "c-other"

    bad = await client.post("/admin/policy/rules", data={**form, "rule_id": "typo", "cidrs": "10.0.0.300/8",
                                                         "action": "save", "csrf_token": csrf_of(page.text)})
    assert bad.status_code == 422 and "is not an IP network" in bad.text
    limits = await client.post("/admin/policy/limits", data={"csrf_token": csrf_of(page.text), **ask,
                                                             "session_max_minutes": "20", "idle_timeout_minutes": "5",
                                                             "mfa_max_age_minutes": "15", "max_sessions_per_user": "2",
                                                             "max_sessions_per_device": "1"})
    assert limits.status_code == 303
    removed = await client.post("/admin/policy/rules/office-only/remove", data={"csrf_token": csrf_of(page.text)})
    assert removed.status_code == 303
    async with portal.db.session() as s:
        body = await rule_sets.load_ruleset(s, "d2")
    assert body and body["version"] == 3 and body["rules"] == [] and body["session_max_minutes"] == 20
    changes = [e.details["change"] for e in portal.audit.of("policy.changed") if e.actor == admin.email]
    assert changes == ["rule office-only added", "limits", "rule office-only removed"]
