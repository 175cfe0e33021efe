"""Reading filter forms from query strings: the one small parser the audit and device filters share.

Values are as typed (strings); unknown keys are dropped, blanks around values stripped, lengths
bounded, and a choice outside its list falls back to its default (never an error: a filter link
edited by hand shows the unfiltered page rather than a failure).
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import fields, is_dataclass


def known_fields(form: type, values: Mapping[str, str], *, max_length: int) -> dict[str, str]:
    """The values of ``form``'s (a dataclass of text fields) fields found in ``values``, stripped
    and cut to ``max_length`` characters; other keys are ignored."""
    assert is_dataclass(form)
    names = {f.name for f in fields(form)}
    return {k: v.strip()[:max_length] for k, v in values.items() if k in names}


def one_of(value: str, choices: Container[str], default: str = "") -> str:
    """``value`` when it is one of ``choices``, else ``default``."""
    return value if value in choices else default


PRIVATE_REFUSALS = ("non-public address", "local name")  # integrations.addresses' words for such a host


def with_private_switch(message: str, setting: str) -> str:
    """``message`` (a refused webhook/syslog target) naming the setting that lets a lab or test
    installation reach private and loopback addresses, when that is why it was refused."""
    if not any(words in message for words in PRIVATE_REFUSALS):
        return message
    section, _, name = setting.partition(".")
    env = f"PRINTGATE_{section.upper()}__{name.upper()}"
    return (f"{message} (a lab or test installation may allow private and loopback addresses: "
            f"[{section}] {name} = true in the server's configuration, or {env}=true)")
