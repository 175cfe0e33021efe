"""The one e-mail check of invitations (CLI and portal): exactly what the sign-in form's type=email takes."""

from __future__ import annotations

import pytest

from printgate.domain.email import normalise_email
from printgate.errors import EMAIL_INVALID, EmailInvalid


@pytest.mark.parametrize(("given", "stored"), [
    ("anna@example.com", "anna@example.com"),
    ("  Anna.Berg@Example.COM ", "anna.berg@example.com"),
    ("tech+dwa@demo.example", "tech+dwa@demo.example"),
    ("o'brien@x-y.example", "o'brien@x-y.example"),
    ("admin@localhost", "admin@localhost"),  # the HTML standard takes a dotless domain
])
def test_addresses_the_sign_in_form_takes_are_stored_trimmed_and_lower_case(given: str, stored: str) -> None:
    assert normalise_email(given) == stored


@pytest.mark.parametrize("given", [
    "notanemail", "bad email", "a b@example.com", "anna@", "@example.com", "anna@@example.com",
    "anna@-example.com", "anna@example-.com", "anna@example..com", "anna@example.com.", "anna@exa_mple.com",
    "änna@example.com", "anna@exämple.com", "\u212a@example.com",  # Kelvin sign: lower() would make it 'k'
    "anna@" + "a" * 64 + ".com", "Anna <anna@example.com>",
])
def test_what_the_sign_in_form_refuses_is_refused_with_a_message_naming_it(given: str) -> None:
    with pytest.raises(EmailInvalid) as raised:
        normalise_email(given)
    assert raised.value.code == EMAIL_INVALID
    assert given.strip() in raised.value.message and "e-mail address" in raised.value.message


def test_empty_and_too_long_say_so() -> None:
    with pytest.raises(EmailInvalid, match="needed"):
        normalise_email("   ")
    with pytest.raises(EmailInvalid, match="longer than 254"):
        normalise_email("a" * 250 + "@example.com")
