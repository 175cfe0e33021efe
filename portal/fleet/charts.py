"""Line charts drawn as inline SVG on the server: no script, no CDN, renders
offline and under the portal's CSP (presentation attributes, no inline CSS)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from markupsafe import Markup

PALETTE = ("#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7b83", "#57606a")
SUPPLY_COLOURS = {
    "black": "#24292f", "cyan": "#0891b2", "magenta": "#c026d3", "yellow": "#ca8a04",
    "red": "#dc2626", "green": "#16a34a", "blue": "#2563eb", "gray": "#6b7280", "grey": "#6b7280",
    "lightcyan": "#67e8f9", "lightmagenta": "#f0abfc", "photoblack": "#111827", "mattblack": "#374151",
}


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    points: tuple[tuple[datetime, float], ...]
    colour: str | None = None  # a supply colour name or "#rrggbb"


def colour_of(name: str | None, n: int) -> str:
    if name:
        key = name.lower().replace(" ", "").replace("-", "")
        if key in SUPPLY_COLOURS:
            return SUPPLY_COLOURS[key]
    return PALETTE[n % len(PALETTE)]


LEGEND_CHAR_W = 6.6  # px per character of the 11 px legend text (wide glyphs included)


def _num(v: float) -> str:
    return f"{v:.1f}"


def _tick_label(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 10 or v == int(v) else f"{v:.1f}"


def line_chart(
    series: Sequence[Series], *, chart_id: str, title: str, y_unit: str = "",
    y_min: float | None = None, y_max: float | None = None, width: int = 680, height: int = 260,
    until: datetime | None = None,
) -> Markup:
    """An SVG line chart of ``series`` over time, with axes, grid and legend. ``until`` (now): the time
    axis ends there, never past it (a single reading or a short history: the last hour up to now)."""
    left, right, top, bottom = 70, 16, 28, 46
    plot_w, plot_h = width - left - right, height - top - bottom
    # legend: as many columns (up to 3) as the longest label allows, never overlapping
    longest = max((len(s.label) for s in series), default=0)
    columns = max(1, min(3, int(plot_w // (16 + LEGEND_CHAR_W * longest + 12)) if longest else 3))
    column_w = plot_w / columns
    fits = max(4, int((column_w - 16 - 12) // LEGEND_CHAR_W))  # characters a column shows
    legend_h = 18 * ((len(series) + columns - 1) // columns)
    total_h = height + legend_h
    parts: list[Markup] = [
        Markup('<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{}" viewBox="0 0 {} {}" width="{}" '
               'height="{}" role="img" aria-label="{}">').format(chart_id, width, total_h, width, total_h, title),
        Markup("<title>{}</title>").format(title),
        Markup('<text x="{}" y="18" font-size="14" font-weight="600" fill="#24292f">{}</text>').format(left, title),
    ]
    pts = [p for s in series for p in s.points]
    if not pts:
        parts.append(Markup('<text x="{}" y="{}" text-anchor="middle" font-size="13" fill="#57606a" '
                            'class="chart-empty">no readings in this period</text></svg>').format(width / 2, height / 2))
        return Markup("").join(parts)
    t_lo = min(t for t, _ in pts).timestamp()
    t_hi = max(t for t, _ in pts).timestamp()
    v_lo = min(v for _, v in pts) if y_min is None else y_min
    v_hi = max(v for _, v in pts) if y_max is None else y_max
    if v_hi == v_lo:
        v_lo, v_hi = v_lo - 1, v_hi + 1
    if until is not None:
        t_hi = max(t_hi, until.timestamp())  # a reading stamped ahead of this clock still stays on the chart
        t_lo = min(t_lo, t_hi - 3600)
    elif t_hi == t_lo:
        t_lo, t_hi = t_lo - 3600, t_hi + 3600

    def x(t: datetime) -> str:
        return _num(left + plot_w * (t.timestamp() - t_lo) / (t_hi - t_lo))

    def y(v: float) -> str:
        return _num(top + plot_h * (1 - (v - v_lo) / (v_hi - v_lo)))

    for i in range(5):  # horizontal grid with value labels
        v = v_lo + (v_hi - v_lo) * i / 4
        parts.append(Markup('<line x1="{l}" y1="{y}" x2="{r}" y2="{y}" stroke="#d0d7de" stroke-width="1"/>'
                            '<text x="{tx}" y="{y}" dy="4" text-anchor="end" font-size="11" fill="#57606a">'
                            "{label}</text>").format(l=left, r=left + plot_w, y=y(v), tx=left - 6,
                                                     label=_tick_label(v) + y_unit))
    for i in range(4):  # time labels
        tick = t_lo + (t_hi - t_lo) * i / 3
        parts.append(Markup('<text x="{}" y="{}" font-size="11" text-anchor="{}" fill="#57606a">{}</text>')
                     .format(_num(left + plot_w * i / 3), top + plot_h + 18, "end" if i == 3 else "middle",
                             datetime.fromtimestamp(tick, UTC).strftime("%d %b %H:%M")))
    parts.append(Markup('<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#57606a" stroke-width="1"/>')
                 .format(left, top + plot_h, left + plot_w, top + plot_h))
    for n, s in enumerate(series):
        colour = str(s.colour) if (s.colour or "").startswith("#") else colour_of(s.colour, n)
        ordered = sorted(s.points)
        parts.append(Markup('<g class="series" data-label="{}">').format(s.label))
        if len(ordered) > 1:
            coords = " ".join(f"{x(t)},{y(v)}" for t, v in ordered)
            parts.append(Markup('<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>')
                         .format(coords, colour))
        for when, v in ordered[-40:]:
            parts.append(Markup('<circle cx="{}" cy="{}" r="2.5" fill="{}"><title>{}</title></circle>').format(
                x(when), y(v), colour,
                f"{s.label}: {_tick_label(v)}{y_unit} at {when.strftime('%Y-%m-%d %H:%M')} UTC"))
        parts.append(Markup("</g>"))
        lx, ly = left + (n % columns) * column_w, height + 4 + 18 * (n // columns)
        shown = s.label if len(s.label) <= fits else s.label[:fits - 1] + "…"
        parts.append(Markup('<rect x="{}" y="{}" width="12" height="12" fill="{}"/>'
                            '<text x="{}" y="{}" font-size="11" fill="#24292f" class="legend">{}<title>{}</title></text>')
                     .format(_num(lx), ly, colour, _num(lx + 16), ly + 10, shown, s.label))
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)
