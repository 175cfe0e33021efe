"""The fleet charts' time axis ends at now, never after it (newcomer nit: a chart of one reading
showed 01:55 to 03:55 at 02:55), and starts at the first reading or an hour before now."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from portal.fleet.charts import Series, line_chart

NOW = datetime(2026, 12, 6, 2, 55, tzinfo=UTC)


def _ticks(svg: str) -> list[str]:
    return re.findall(r'text-anchor="(?:middle|end)" fill="#57606a">(\d\d \w{3} \d\d:\d\d)</text>', svg)


def test_one_reading_spans_the_hour_up_to_now() -> None:
    svg = str(line_chart([Series("Black", ((NOW - timedelta(minutes=5), 40.0),))], chart_id="c", title="t",
                         until=NOW))
    ticks = _ticks(svg)
    assert ticks[0] == "06 Dec 01:55" and ticks[-1] == "06 Dec 02:55", ticks


def test_a_longer_history_spans_its_first_reading_to_now() -> None:
    points = ((NOW - timedelta(days=3), 90.0), (NOW - timedelta(days=1), 60.0))
    ticks = _ticks(str(line_chart([Series("Black", points)], chart_id="c", title="t", until=NOW)))
    assert ticks[0] == "03 Dec 02:55" and ticks[-1] == "06 Dec 02:55", ticks


def test_without_now_the_axis_is_the_readings_own_span() -> None:
    ticks = _ticks(str(line_chart([Series("Black", ((NOW, 1.0),))], chart_id="c", title="t")))
    assert ticks[-1] == "06 Dec 03:55"  # unchanged for callers that give no "now"
