"""Run-out forecast and the SVG charts (pure), and the 0006 migration matching the models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from portal.fleet.charts import Series, line_chart
from portal.fleet.forecast import days_until_empty, forecast_text
from portal.schemas.fleet import level_text
from printgate.domain import SupplyLevel, SupplyState
from printgate.store.db import Database
from printgate.store.fleet import SEARCH_INDEX
from printgate.store.models import Base

T = datetime(2025, 1, 1, tzinfo=UTC)


def _pts(*values: float, step_days: float = 1.0) -> list[tuple[datetime, float]]:
    return [(T + timedelta(days=i * step_days), v) for i, v in enumerate(values)]


def test_linear_decline_forecasts_days_until_empty() -> None:
    assert days_until_empty(_pts(50, 45, 40, 35)) == 7.0
    assert forecast_text(7.0) == "empty in ~7 days"


def test_forecast_restarts_after_a_refill() -> None:
    # old cartridge emptied fast, new one at 100 falls by 2 a day
    assert days_until_empty(_pts(30, 10, 2, 100, 98, 96, 94)) == 47.0


def test_no_forecast_for_flat_rising_sparse_or_too_short_series() -> None:
    assert days_until_empty(_pts(60, 60, 60)) is None
    assert days_until_empty(_pts(40, 41, 42)) is None
    assert days_until_empty(_pts(50, 40)) is None
    assert days_until_empty(_pts(50, 49, 48, step_days=0.01)) is None
    assert forecast_text(None) == ""


def test_special_levels_read_as_words() -> None:
    def sup(level: int | None, cap: int | None, state: SupplyState) -> SupplyLevel:
        return SupplyLevel(1, "Toner", "toner", "black", "percent", cap, level, state)

    assert level_text(sup(None, 100, SupplyState.SOME_REMAINING)) == "some remaining"
    assert level_text(sup(None, 100, SupplyState.UNKNOWN)) == "unknown"
    assert level_text(sup(None, 100, SupplyState.OTHER)) == "other"
    assert level_text(sup(30, 120, SupplyState.KNOWN)) == "25 %"
    assert level_text(sup(7, None, SupplyState.KNOWN)) == "7 percent (capacity unknown)"


def test_chart_escapes_labels_and_draws_one_series_per_input() -> None:
    svg = str(line_chart([Series('<script>alert(1)</script>', tuple(_pts(10, 20, 30)), "cyan"),
                          Series("Black", tuple(_pts(90, 80)), "black")], chart_id="c", title="T & <b>"))
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "T &amp; &lt;b&gt;" in svg
    assert svg.count("<polyline") == 2 and svg.startswith("<svg") and svg.endswith("</svg>")
    assert 'style=' not in svg  # the portal's CSP forbids inline styles
    empty = str(line_chart([], chart_id="e", title="nothing"))
    assert "no readings in this period" in empty and "<polyline" not in empty


async def test_migrations_create_exactly_the_fleet_models(db: Database) -> None:
    ours = {"readings", "reading_batches", "device_states", "device_supplies", "device_alerts", "supply_thresholds",
            "devices"}

    def diff(conn) -> list:  # type: ignore[no-untyped-def,type-arg]
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return [d for d in compare_metadata(ctx, Base.metadata) if ours & set(_tables_of(d))
                and not _conditional_index(d)]

    async with db.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


def _conditional_index(d: object) -> bool:
    """The overview's trigram search index (0023): only where pg_trgm could be created, so not in the models."""
    return isinstance(d, tuple) and d[0] == "remove_index" and getattr(d[1], "name", None) == SEARCH_INDEX


def _tables_of(d: object) -> list[str]:
    items = d if isinstance(d, list) else [d]
    names = []
    for item in items:
        for part in item if isinstance(item, tuple) else (item,):
            name = getattr(part, "name", None) if not hasattr(part, "table") else getattr(part.table, "name", None)
            if isinstance(name, str):
                names.append(name)
            if isinstance(part, str):
                names.append(part)
    return names
