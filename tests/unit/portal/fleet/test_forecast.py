"""Supply run-out forecast (portal/fleet/forecast.py): least squares since the last refill."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from portal.fleet.forecast import (
    MIN_POINTS,
    days_until_empty,
    forecast_text,
    no_forecast_reason,
    since_last_refill,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def daily(*levels: float) -> list[tuple[datetime, float]]:
    return [(T0 + timedelta(days=i), v) for i, v in enumerate(levels)]


def test_a_steady_fall_is_extrapolated_to_empty() -> None:
    # 2 points a day down from 50: 20 days left at the newest point (10)
    assert days_until_empty(daily(50, 48, 46, 44, 42, 40, 38, 36, 34, 32, 30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10)) == 5.0


def test_only_the_points_since_the_newest_refill_count() -> None:
    points = daily(30, 20, 10, 95, 90, 85)  # a new cartridge on day 3
    assert since_last_refill(points) == points[3:]
    assert days_until_empty(points) == 17.0  # 85 at 5 points a day, not the old cartridge's slope


def test_points_out_of_order_are_sorted_first() -> None:
    points = daily(40, 30, 20)
    assert days_until_empty(list(reversed(points))) == days_until_empty(points) == 2.0


def test_no_forecast_for_too_few_points_a_short_span_or_a_level_not_falling() -> None:
    assert days_until_empty(daily(50, 40)) is None
    assert days_until_empty([(T0 + timedelta(minutes=i), 50 - i) for i in range(5)]) is None  # 4 minutes
    assert days_until_empty(daily(40, 40, 40)) is None
    assert days_until_empty(daily(40, 41, 42)) is None


def test_no_forecast_beyond_ten_years() -> None:
    assert days_until_empty(daily(99.0, 98.99, 98.98)) is None  # ~27 years


def test_the_text_rounds_and_says_less_than_a_day() -> None:
    assert forecast_text(None) == ""
    assert forecast_text(0.4) == "empty in less than a day"
    assert forecast_text(1.2) == "empty in ~1 day"
    assert forecast_text(6.6) == "empty in ~7 days"


def test_the_reason_names_what_is_still_missing() -> None:
    assert no_forecast_reason([]) == "no forecast: no level in percent reported yet"
    assert no_forecast_reason(daily(50)) == (
        f"no forecast yet: needs 2 more readings (1 of {MIN_POINTS} since the last refill)")
    assert no_forecast_reason([(T0 + timedelta(hours=i), 50 - i) for i in range(3)]) == (
        "no forecast yet: needs readings over 6 hours (2.0 h so far since the last refill)")
    assert no_forecast_reason(daily(40, 40, 40)) == "no forecast: the level is not falling"
