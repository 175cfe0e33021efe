"""The retry policy on hand-made inputs: exponential back-off with bounded jitter, a ceiling,
and the receiver's Retry-After when it asks for longer."""

from __future__ import annotations

import pytest

from integrations.dispatcher import RetryPolicy


@pytest.mark.parametrize(("attempts", "base"), [(1, 5), (2, 10), (3, 20), (4, 40), (8, 640)])
def test_back_off_doubles_per_attempt_within_the_jitter(attempts: int, base: float) -> None:
    policy = RetryPolicy(initial_seconds=5, maximum_seconds=3600, jitter=0.2)
    assert policy.delay(attempts, rand=lambda: 0.5) == base
    assert policy.delay(attempts, rand=lambda: 0.0) == pytest.approx(base * 0.8)
    assert policy.delay(attempts, rand=lambda: 1.0) == pytest.approx(base * 1.2)


def test_the_ceiling_holds_for_late_attempts() -> None:
    policy = RetryPolicy(initial_seconds=5, maximum_seconds=60, jitter=0.0)
    assert policy.delay(30) == 60


def test_retry_after_wins_when_longer_but_not_past_the_ceiling() -> None:
    policy = RetryPolicy(initial_seconds=5, maximum_seconds=600, jitter=0.0)
    assert policy.delay(1, retry_after=120) == 120
    assert policy.delay(3, retry_after=1) == 20
    assert policy.delay(1, retry_after=100_000) == 600
