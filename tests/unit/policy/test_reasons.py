"""Reason constants alone: every code is stable, unique and dotted, every message says something."""

from policy import reasons
from printgate.domain import Reason


def test_every_reason_has_a_unique_dotted_code_and_a_message() -> None:
    found = [v for v in vars(reasons).values() if isinstance(v, Reason)]
    codes = [r.code for r in found]
    assert len(found) > 10
    assert len(codes) == len(set(codes))
    assert all("." in c and c == c.lower() and " " not in c for c in codes)
    assert all(r.message and r.message[0].islower() for r in found)
