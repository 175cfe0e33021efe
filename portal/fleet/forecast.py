"""Supply run-out forecast: a least-squares line through the level since the
last refill, extrapolated to empty ("empty in ~N days"). Pure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

REFILL_JUMP = 10.0  # a rise of more than this many points starts a new cartridge
MIN_POINTS = 3
MIN_SPAN_DAYS = 0.25
MAX_DAYS = 3650.0


def since_last_refill(points: Sequence[tuple[datetime, float]]) -> list[tuple[datetime, float]]:
    """The points after the newest refill (a jump up), oldest first."""
    ordered = sorted(points)
    start = 0
    for i in range(1, len(ordered)):
        if ordered[i][1] - ordered[i - 1][1] > REFILL_JUMP:
            start = i
    return ordered[start:]


def days_until_empty(points: Sequence[tuple[datetime, float]]) -> float | None:
    """Days from the newest point until the fitted level reaches 0; None when
    too few points, too short a span, or the level is not falling."""
    run = since_last_refill(points)
    if len(run) < MIN_POINTS:
        return None
    t0 = run[0][0]
    xs = [(t - t0).total_seconds() / 86400.0 for t, _ in run]
    ys = [v for _, v in run]
    if xs[-1] - xs[0] < MIN_SPAN_DAYS:
        return None
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    if slope >= 0:
        return None
    fitted_now = my + slope * (xs[-1] - mx)
    days = max(fitted_now, 0.0) / -slope
    return round(days, 1) if days <= MAX_DAYS else None


def forecast_text(days: float | None) -> str:
    if days is None:
        return ""
    if days < 1:
        return "empty in less than a day"
    return f"empty in ~{round(days)} day{'s' if round(days) != 1 else ''}"


def no_forecast_reason(points: Sequence[tuple[datetime, float]]) -> str:
    """Why there is no run-out forecast yet, saying how much history it still needs."""
    run = since_last_refill(points)
    if not run:
        return "no forecast: no level in percent reported yet"
    if len(run) < MIN_POINTS:
        missing = MIN_POINTS - len(run)
        return (f"no forecast yet: needs {missing} more reading{'s' if missing != 1 else ''} "
                f"({len(run)} of {MIN_POINTS} since the last refill)")
    span_h = (run[-1][0] - run[0][0]).total_seconds() / 3600
    if span_h < MIN_SPAN_DAYS * 24:
        return (f"no forecast yet: needs readings over {MIN_SPAN_DAYS * 24:g} hours "
                f"({span_h:.1f} h so far since the last refill)")
    return "no forecast: the level is not falling"
