"""E-mail addresses people are invited with: one check for the CLI and the portal.

An invited person signs in on a form whose field is ``<input type="email">``; a browser refuses
to submit anything that is not a "valid e-mail address" as the HTML standard defines it
(https://html.spec.whatwg.org/multipage/input.html#valid-e-mail-address). An address that
fails that check could be invited, set a password, and then never sign in. So invitations take
exactly the addresses that form takes, lower-cased and without surrounding blanks (accounts are
stored lower-case). No I/O: nothing here asks DNS whether the domain receives mail.
"""

from __future__ import annotations

import re

from printgate.errors import EmailInvalid

# The HTML standard's definition, verbatim in meaning: a local part of atext characters and dots,
# "@", then dot-separated labels of letters, digits and inner hyphens, at most 63 characters each.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_EMAIL = re.compile(rf"[a-z0-9.!#$%&'*+/=?^_`{{|}}~-]+@{_LABEL}(?:\.{_LABEL})*", re.IGNORECASE | re.ASCII)
MAX_LENGTH = 254  # RFC 5321's limit on a forward path's address; nothing longer is deliverable


def normalise_email(text: str) -> str:
    """``text`` as the address stored for a new account (trimmed, lower-case), or ``EmailInvalid``
    with a message naming what is wrong (the sign-in form would refuse the address)."""
    stripped = text.strip()
    address = stripped.lower()
    if not address:
        raise EmailInvalid("an e-mail address is needed (e.g. anna@example.com)")
    if len(address) > MAX_LENGTH:
        raise EmailInvalid(f"{address[:40]}... is not an e-mail address: longer than {MAX_LENGTH} characters")
    if _EMAIL.fullmatch(stripped) is None:  # before lower(): the Kelvin sign would lower to 'k'
        raise EmailInvalid(f"{stripped!r} is not an e-mail address (like anna@example.com: a name, '@', "
                           "a domain; no spaces): the sign-in form would not accept it")
    return address
