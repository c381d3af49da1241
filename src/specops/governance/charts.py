"""Line charts as inline SVG: the report site's pages need no script, no charting library and no network.

One chart is a few series of (time, value) points on a shared time axis, an
optional horizontal threshold (drawn dashed, red) and a legend. Coordinates
are computed here; the browser only draws. Every chart carries the class
`chart` and each series a `path.series`, which the browser test counts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape

PALETTE = ("#4C72B0", "#DD8452", "#55A868", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974", "#64B5CD")
THRESHOLD_COLOUR = "#C44E52"
WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 150, 28, 36  # margins: axis labels left and below, legend right
TICKS = 4


@dataclass(frozen=True)
class Series:
    name: str
    points: list[tuple[float, float]]  # (epoch seconds, value), any order
    step: bool = False  # a value that holds until the next point (traffic weights), not a trend between them


@dataclass(frozen=True)
class Chart:
    title: str
    series: list[Series]
    threshold: float | None = None
    threshold_label: str = "threshold"
    y_label: str = ""
    extra: list[float] = field(default_factory=list)  # values the y range must include (0, say)


def _format_time(t: float, span: float) -> str:
    moment = datetime.fromtimestamp(t, UTC)
    return moment.strftime("%m-%d %H:%M" if span < 3 * 86400 else "%Y-%m-%d")


def _format_value(v: float) -> str:
    return f"{v:.3g}"


def _range(values: list[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    if high == low:  # one value, or a flat line: give it room
        pad = abs(high) * 0.1 or 1.0
        return low - pad, high + pad
    pad = (high - low) * 0.08
    return low - pad, high + pad


def render(chart: Chart) -> str:
    """The chart as an <svg> element; an empty chart says there is nothing to draw instead."""
    points = [p for s in chart.series for p in s.points]
    if not points:
        return f'<p class="empty">{escape(chart.title)}: no data yet.</p>'
    times = [t for t, _ in points]
    t0, t1 = min(times), max(times)
    if t1 == t0:
        t0, t1 = t0 - 1800, t1 + 1800
    values = [v for _, v in points] + chart.extra + ([chart.threshold] if chart.threshold is not None else [])
    v0, v1 = _range(values)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + (t - t0) / (t1 - t0) * plot_w

    def y(v: float) -> float:
        return TOP + (1 - (v - v0) / (v1 - v0)) * plot_h

    parts = [f'<svg class="chart" role="img" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
             f'width="{WIDTH}" height="{HEIGHT}" aria-label="{escape(chart.title)}">',
             f'<title>{escape(chart.title)}</title>',
             f'<text x="{LEFT}" y="16" class="chart-title">{escape(chart.title)}</text>',
             f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#ccc"/>']
    for i in range(TICKS + 1):
        v = v0 + (v1 - v0) * i / TICKS
        t = t0 + (t1 - t0) * i / TICKS
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{LEFT - 4}" y="{y(v) + 4:.1f}" text-anchor="end" class="tick">{_format_value(v)}</text>')
        parts.append(f'<text x="{x(t):.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle" class="tick">'
                     f'{_format_time(t, t1 - t0)}</text>')
    if chart.y_label:
        parts.append(f'<text x="12" y="{TOP + plot_h / 2:.1f}" transform="rotate(-90 12 {TOP + plot_h / 2:.1f})" '
                     f'text-anchor="middle" class="tick">{escape(chart.y_label)}</text>')
    legend_y = TOP + 6
    if chart.threshold is not None:
        ty = y(chart.threshold)
        parts.append(f'<line class="threshold" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{ty:.1f}" y2="{ty:.1f}" '
                     f'stroke="{THRESHOLD_COLOUR}" stroke-dasharray="6 4"/>')
        parts.append(_legend(legend_y, THRESHOLD_COLOUR, f"{chart.threshold_label} {_format_value(chart.threshold)}", dashed=True))
        legend_y += 16
    for index, series in enumerate(chart.series):
        colour = PALETTE[index % len(PALETTE)]
        ordered = sorted(series.points)
        if not ordered:
            continue
        path = _path([(x(t), y(v)) for t, v in ordered], series.step)
        parts.append(f'<path class="series" d="{path}" fill="none" stroke="{colour}" stroke-width="2">'
                     f'<title>{escape(series.name)}</title></path>')
        parts.extend(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="2.5" fill="{colour}"><title>{escape(series.name)} '
                     f'{_format_time(t, 0)}: {_format_value(v)}</title></circle>' for t, v in ordered)
        parts.append(_legend(legend_y, colour, series.name))
        legend_y += 16
    parts.append("</svg>")
    return "".join(parts)


def _path(points: list[tuple[float, float]], step: bool) -> str:
    (x0, y0), rest = points[0], points[1:]
    commands = [f"M{x0:.1f},{y0:.1f}"]
    for px, py in rest:
        commands.append(f"H{px:.1f} V{py:.1f}" if step else f"L{px:.1f},{py:.1f}")
    if not rest:  # a single point: a short tick, so the series still shows as a line
        commands.append("h4")
    return " ".join(commands)


def _legend(top: float, colour: str, label: str, dashed: bool = False) -> str:
    x = WIDTH - RIGHT + 12
    dash = ' stroke-dasharray="6 4"' if dashed else ""
    return (f'<line x1="{x}" x2="{x + 18}" y1="{top:.1f}" y2="{top:.1f}" stroke="{colour}" stroke-width="2"{dash}/>'
            f'<text x="{x + 24}" y="{top + 4:.1f}" class="legend">{escape(label)}</text>')
