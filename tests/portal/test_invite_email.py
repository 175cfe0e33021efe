"""Inviting on /admin/users refuses an address the sign-in form would refuse (newcomer finding 4):
the users page again, the message beside the e-mail field, what was typed kept; no link, no audit."""

from __future__ import annotations

import html
import re

from printgate.domain import Role
from tests.portal.conftest import Portal
from tests.portal.test_admin import post, signed_in


def _field_error(page: str, element_id: str) -> str | None:
    m = re.search(rf'<p class="field-error" id="{element_id}">([^<]*)</p>', page)
    return html.unescape(m.group(1)) if m else None


async def test_an_invalid_address_is_refused_beside_the_field_and_nothing_is_sent(portal: Portal) -> None:
    admin, admin_user = await signed_in(portal, Role.DEALER_ADMIN)
    invited_before = len(portal.audit.of("rbac.invited"))
    try:
        for bad in ("notanemail", "bad email", "anna@example..com"):
            r = await post(admin, "/admin/users", "/admin/invitations", {"email": bad, "roles": ["technician"]})
            assert r.status_code == 422, r.text[:300]
            assert "invite-link" not in r.text
            error = _field_error(r.text, "inv-email-error")
            assert error is not None and f"'{bad}' is not an e-mail address" in error, error
            assert 'aria-describedby="inv-email-error"' in r.text
            assert f'value="{html.escape(bad)}"' in r.text  # what was typed, to correct
            assert re.search(r'value="technician" checked', r.text)  # the roles chosen stay chosen
        # no role: said beside the roles, together with a bad address
        r = await post(admin, "/admin/users", "/admin/invitations", {"email": "x y"})
        assert r.status_code == 422
        assert _field_error(r.text, "inv-roles-error") == "choose at least one role you may grant"
        assert _field_error(r.text, "inv-email-error") is not None
        assert len(portal.audit.of("rbac.invited")) == invited_before
        # a good address, blanks and capitals as people type them: invited as stored (lower-case)
        r = await post(admin, "/admin/users", "/admin/invitations",
                       {"email": "  New.Tech@Example.ORG ", "roles": ["technician"]})
        assert r.status_code == 200 and 'id="invite-link"' in r.text
        assert "new.tech@example.org" in r.text
        me = getattr(admin_user, "email")  # signed_in returns the user as object
        assert [e.personal.get("subject") for e in portal.audit.of("rbac.invited")
                if e.actor == me][-1] == "new.tech@example.org"
    finally:
        await admin.aclose()
