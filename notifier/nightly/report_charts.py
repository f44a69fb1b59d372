"""Inline SVG charts for the run report: horizontal bars, stacked bars and lines.

Hand-written SVG rather than a plotting library: the report must be one self-contained file that any
browser shows (no scripts, no fonts to ship — text is SVG <text> in the reader's CJK font), the charts
are simple, and a few kilobytes each keeps a year of reports small. Labels are escaped; widths of
Chinese labels are estimated at one em per CJK character.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from xml.sax.saxutils import escape

FONT = "'Noto Sans CJK SC','Source Han Sans SC','Microsoft YaHei','PingFang SC',sans-serif"
PALETTE = ("#2f6db5", "#d9822b", "#3a9d5d", "#b03a48", "#7b5ea7", "#8c8c8c", "#c9a227", "#2a9fb3")
KIND_COLORS = {"unclaimed": "#2f6db5", "improper": "#b03a48", "undetermined": "#c9a227"}
FONT_SIZE = 12


def text_width(text: str, size: float = FONT_SIZE) -> float:
    """Approximate rendered width: CJK, full-width and general punctuation (“”、…) one em, others 0.6 em."""
    return sum(size if ord(ch) >= 0x2000 else size * 0.6 for ch in text)


def clip(text: str, width: float, size: float = FONT_SIZE) -> str:
    """`text` shortened with "…" to fit `width` (the full text goes in a <title> tooltip)."""
    if text_width(text, size) <= width:
        return text
    out = ""
    for ch in text:
        if text_width(out + ch + "…", size) > width:
            break
        out += ch
    return out + "…"


def _label(x: float, y: float, text: str, width: float) -> str:
    shown = clip(text, width)
    tip = f"<title>{escape(text)}</title>" if shown != text else ""
    return f'<text x="{x:.1f}" y="{y}" text-anchor="end">{tip}{escape(shown)}</text>'


def _fmt(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value):,}"


def _svg(width: float, height: float, body: str, title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title, {chr(34): "&quot;"})}" '
            f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
            f'font-family="{FONT}" font-size="{FONT_SIZE}">'
            f"<title>{escape(title)}</title>{body}</svg>")


def bar_chart(items: Sequence[tuple[str, float]], *, title: str, unit: str = "", color: str = PALETTE[0],
              width: int = 960, value_text: Callable[[float], str] | None = None) -> str:
    """Horizontal bars, one per (label, value), largest value setting the scale."""
    if not items:
        return ""
    fmt = value_text or (lambda v: f"{_fmt(v)}{unit}")
    label_w = min(max(text_width(label) for label, _ in items) + 12, width * 0.45)
    value_w = max(text_width(fmt(v)) for _, v in items) + 10
    bar_w = max(width - label_w - value_w - 10, 40)
    row = 22
    top = 6
    peak = max((v for _, v in items), default=0) or 1
    parts = []
    for i, (label, value) in enumerate(items):
        y = top + i * row
        w = max(bar_w * max(value, 0) / peak, 0 if value <= 0 else 1.5)
        parts.append(
            _label(label_w - 8, y + 15, label, label_w - 10) +
            f'<rect x="{label_w:.1f}" y="{y + 4}" width="{w:.1f}" height="{row - 8}" fill="{color}" rx="2"/>'
            f'<text x="{label_w + w + 5:.1f}" y="{y + 15}" fill="#333">{escape(fmt(value))}</text>')
    return _svg(width, top * 2 + row * len(items), "".join(parts), title)


def stacked_bar_chart(rows: Sequence[tuple[str, Sequence[float]]], segments: Sequence[str], *, title: str,
                      colors: Sequence[str] = PALETTE, width: int = 960) -> str:
    """Horizontal stacked bars: each row's values split into `segments`, with a legend above."""
    if not rows:
        return ""
    label_w = min(max(text_width(label) for label, _ in rows) + 12, width * 0.4)
    totals = [sum(values) for _, values in rows]
    total_w = max(text_width(_fmt(t)) for t in totals) + 10
    bar_w = max(width - label_w - total_w - 10, 40)
    peak = max(totals) or 1
    legend_h = 22
    row = 24
    parts = []
    x = label_w
    for i, name in enumerate(segments):
        parts.append(f'<rect x="{x:.1f}" y="5" width="12" height="12" fill="{colors[i % len(colors)]}"/>'
                     f'<text x="{x + 16:.1f}" y="15">{escape(name)}</text>')
        x += 28 + text_width(name)
    for r, (label, values) in enumerate(rows):
        y = legend_h + r * row
        parts.append(_label(label_w - 8, y + 16, label, label_w - 10))
        x = label_w
        for i, value in enumerate(values):
            w = bar_w * max(value, 0) / peak
            if w > 0:
                tip = f"<title>{escape(segments[i])}：{_fmt(value)}</title>"
                parts.append(f'<rect x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="{row - 8}" '
                             f'fill="{colors[i % len(colors)]}">{tip}</rect>')
            x += w
        parts.append(f'<text x="{x + 5:.1f}" y="{y + 16}" fill="#333">{escape(_fmt(totals[r]))}</text>')
    return _svg(width, legend_h + row * len(rows) + 6, "".join(parts), title)


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exp:
            return step * exp
    return 10 * exp


def line_chart(x_labels: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]], *, title: str,
               unit: str = "", colors: Sequence[str] = PALETTE, width: int = 960, height: int = 240) -> str:
    """Lines over the x labels (one point per label; None leaves a gap), y axis from zero, legend above."""
    if not x_labels or not series:
        return ""
    values = [v for _, vs in series for v in vs if v is not None]
    top_value = _nice_max(max(values, default=0))
    left = max(text_width(_fmt(top_value) + unit), 30) + 12
    right, top, bottom = 16, 30, 36
    plot_w = width - left - right
    plot_h = height - top - bottom
    n = len(x_labels)

    def px(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def py(v: float) -> float:
        return top + plot_h * (1 - v / top_value)

    parts = []
    for k in range(5):  # grid and y ticks
        tick = top_value * k / 4
        y = py(tick)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e3e3e3"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#666">{escape(_fmt(tick))}</text>')
    step = max(1, math.ceil(n / max(1, plot_w // 70)))
    for i, label in enumerate(x_labels):
        if i % step == 0 or i == n - 1:
            parts.append(f'<text x="{px(i):.1f}" y="{height - bottom + 18}" text-anchor="middle" fill="#666">'
                         f"{escape(label)}</text>")
    x = left
    for s, (name, vs) in enumerate(series):
        color = colors[s % len(colors)]
        parts.append(f'<rect x="{x:.1f}" y="8" width="12" height="3" fill="{color}"/>'
                     f'<text x="{x + 16:.1f}" y="14">{escape(name)}</text>')
        x += 30 + text_width(name)
        segment: list[str] = []
        for i, v in enumerate([*vs, None]):
            if v is None:
                if len(segment) > 1:
                    points = " ".join(segment)
                    parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>')
                segment = []
                continue
            segment.append(f"{px(i):.1f},{py(v):.1f}")
            tip = f"<title>{escape(x_labels[i])} {escape(name)}：{escape(_fmt(v))}{escape(unit)}</title>"
            parts.append(f'<circle cx="{px(i):.1f}" cy="{py(v):.1f}" r="3" fill="{color}">{tip}</circle>')
    if unit:
        parts.append(f'<text x="4" y="{top - 8}" fill="#666">{escape(unit)}</text>')
    return _svg(width, height, "".join(parts), title)
