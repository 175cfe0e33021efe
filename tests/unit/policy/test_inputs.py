"""Policy inputs alone: plain frozen facts; the engine never guesses a clock."""

from datetime import datetime

import pytest

from policy.inputs import Action, Context
from printgate.domain import Role
from tests.unit.policy.conftest import make_subject, make_user


def test_context_refuses_a_naive_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Context(now=datetime(2026, 11, 25, 10, 0))


def test_only_dwa_actions_are_dwa() -> None:
    assert {a for a in Action if a.is_dwa} == {Action.DWA_OPEN, Action.DWA_EXTEND}


def test_a_subjects_roles_are_its_users() -> None:
    assert make_subject(make_user(Role.AUDITOR)).roles == frozenset({Role.AUDITOR})
