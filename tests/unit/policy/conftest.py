"""Builders for policy inputs: shared with the benchmark in ``printgate.testing.policy_inputs``."""

from __future__ import annotations

from datetime import datetime

import pytest

from printgate.testing.policy_inputs import (
    NOW,
    make_context,
    make_device,
    make_resource,
    make_subject,
    make_user,
)

__all__ = ["NOW", "make_context", "make_device", "make_resource", "make_subject", "make_user"]


@pytest.fixture
def now() -> datetime:
    return NOW
