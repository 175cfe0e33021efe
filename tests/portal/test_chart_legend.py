"""The fleet detail charts' legend in Chromium (issue 15): long supply names never overlap and stay
inside the chart (fewer columns, or shortened with the full name in the tooltip)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from portal.fleet.charts import Series, line_chart
from tests.portal.test_browser_dwa import browser  # noqa: F401  (the shared Chromium fixture)

pytestmark = pytest.mark.browser

LABELS = ["Black Toner Cartridge HP 410X (CF410X)", "Cyan Toner Cartridge HP 410X (CF411X)",
          "Magenta Toner Cartridge HP 410X (CF413X)", "Yellow Toner Cartridge HP 410X (CF412X)",
          "Imaging Drum Unit (OPC) for all colours", "Waste toner box"]


@pytest.mark.parametrize("labels", [LABELS, ["Black", "Cyan", "Magenta", "Yellow"],
                                    ["An extremely long supply description that a vendor might send " * 2]],
                         ids=["long", "short", "one-very-long"])
async def test_legend_entries_do_not_overlap(browser: Any, labels: list[str]) -> None:  # noqa: F811
    start = datetime(2026, 12, 1, tzinfo=UTC)
    series = [Series(label, tuple((start + timedelta(hours=h), 90.0 - h - n) for h in range(5)), None)
              for n, label in enumerate(labels)]
    svg = str(line_chart(series, chart_id="supplies", title="Supply levels", y_unit=" %", y_min=0, y_max=100))
    page = await browser.new_page(viewport={"width": 1366, "height": 900})
    try:
        await page.set_content(f"<!doctype html><html><body style='margin:0'>{svg}</body></html>")
        boxes = await page.evaluate("""[...document.querySelectorAll('#supplies text.legend')].map(t => {
            const r = t.getBoundingClientRect(); return [t.textContent, r.left, r.top, r.right, r.bottom]; })""")
        width = await page.evaluate("document.querySelector('#supplies').getBoundingClientRect().right")
    finally:
        await page.close()
    assert len(boxes) == len(labels)
    for i, (text, left, top, right, bottom) in enumerate(boxes):
        assert right <= width, (text, right, width)
        for other, l2, t2, r2, b2 in boxes[i + 1:]:
            apart = right <= l2 or r2 <= left or bottom <= t2 or b2 <= top
            assert apart, (text, other)
