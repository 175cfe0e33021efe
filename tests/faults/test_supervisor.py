"""Supervised loops: a failure is restarted with back-off, recorded and visible; nothing dies silently."""

from __future__ import annotations

import asyncio

from printgate.supervisor import Backoff, Supervisor


async def _until(predicate: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_a_failing_task_is_restarted_and_its_error_is_kept() -> None:
    runs = 0
    restarts: list[tuple[str, str]] = []

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs <= 2:
            raise OSError(28, "No space left on device")
        await asyncio.Event().wait()

    sup = Supervisor("test", backoff=Backoff(initial=0.05, maximum=0.1),
                     on_restart=lambda name, error: restarts.append((name, error)))
    sup.add("upload", flaky)
    async with sup:
        await _until(lambda: runs == 3 and sup.health()[0].state == "running")
        (health,) = sup.health()
        assert health.restarts == 2
        assert health.last_error is not None and "No space left on device" in health.last_error
        assert health.last_error_at is not None
        assert [name for name, _ in restarts] == ["upload", "upload"]
    assert sup.health()[0].state == "stopped"


async def test_a_task_that_returns_is_restarted_not_forgotten() -> None:
    runs = 0

    async def returns_early() -> None:
        nonlocal runs
        runs += 1
        if runs > 1:
            await asyncio.Event().wait()

    sup = Supervisor("test", backoff=Backoff(initial=0.05))
    sup.add("commands", returns_early)
    async with sup:
        await _until(lambda: runs == 2)
        assert sup.health()[0].last_error == "ended unexpectedly"


async def test_backoff_grows_and_is_bounded() -> None:
    b = Backoff(initial=1.0, maximum=8.0)
    assert [b.delay(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
