"""Server-rendered SVG charts: pure functions from numbers to markup, no JavaScript, no build step.

Each chart is an <svg role="img"> with a <title> (and aria-label) naming it and a <desc> saying
what it shows in words; every bar carries its own <title> (the browser's tooltip). Sized by its
viewBox, so it scales to its container; coloured by the CSS classes in static/css/dashboard.css
(`chart-*`). Every label is escaped: camera and zone names are typed by users.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

MAX_SERIES_CLASSES = 6  # chart-series-0 .. chart-series-5 in the stylesheet; more series reuse them
LABEL_CHARS = 26  # longer axis labels are cut, with the whole label in their <title>


def _num(value: float) -> str:
    """A coordinate: short, and never in exponent form."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def plain_number(value: float) -> str:
    """12 -> "12", 0.5 -> "0.5", 1234.567 -> "1,234.57"."""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def percent(value: float) -> str:
    return f"{value * 100:.0f} %"


def _with_unit(value: str, unit: str) -> str:
    return f"{value} {unit}" if unit else value


def _cut(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


def _nice_ceiling(value: float) -> tuple[float, float]:
    """The axis top at or above `value` and its tick step, both 1, 2 or 5 times a power of ten."""
    if value <= 0:
        return 1.0, 1.0
    raw_step = value / 4
    power = 10 ** math.floor(math.log10(raw_step))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw_step)
    if value >= 1 and step < 1:  # counts: no ticks at 0.5
        step = 1.0
    return step * math.ceil(value / step - 1e-9), step


def _open(*, kind: str, width: float, height: float, title: str, desc: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-{kind}" viewBox="0 0 {_num(width)} {_num(height)}" '
        f'role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f"<desc>{escape(desc)}</desc>",
    ]


def _empty(*, kind: str, title: str, width: float, height: float) -> SafeString:
    height = min(height, width / 10)  # one line of text: an empty chart should not take a chart's room
    parts = _open(kind=kind, width=width, height=height, title=title, desc="No data for this period.")
    parts.append(f'<text class="chart-empty" x="{_num(width / 2)}" y="{_num(height / 2)}" text-anchor="middle">'
                 "No data for this period.</text></svg>")
    return mark_safe("".join(parts))


def _y_axis(parts: list[str], *, top: float, step: float, x0: float, x1: float, y0: float, plot_height: float,
            unit: str) -> None:
    """Horizontal grid lines with their values, from the baseline y0 up."""
    ticks = round(top / step)
    for i in range(ticks + 1):
        value = step * i
        y = y0 - plot_height * value / top
        parts.append(f'<line class="chart-grid" x1="{_num(x0)}" x2="{_num(x1)}" y1="{_num(y)}" y2="{_num(y)}"/>')
        parts.append(f'<text class="chart-tick" x="{_num(x0 - 6)}" y="{_num(y + 4)}" text-anchor="end">'
                     f"{escape(plain_number(value))}</text>")
    if unit:
        parts.append(f'<text class="chart-unit" x="{_num(x0 - 6)}" y="{_num(y0 - plot_height - 10)}" '
                     f'text-anchor="end">{escape(unit)}</text>')


def bar_chart(*, bars: Sequence[tuple[str, float]], title: str, unit: str = "", max_labels: int = 12,
              width: int = 720, height: int = 240) -> SafeString:
    """Vertical bars, one per (label, value) in order, e.g. alerts per day.

    With many bars only every k-th label is written under the axis (at most `max_labels`); every
    bar still names itself in its tooltip."""
    if not bars:
        return _empty(kind="bar", title=title, width=width, height=height)
    left, right, top_pad, bottom = 48.0, 12.0, 24.0, 34.0
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    y0 = top_pad + plot_h
    top, step = _nice_ceiling(max(value for _, value in bars))
    highest = max(bars, key=lambda bar: bar[1])
    total = sum(value for _, value in bars)
    desc = (f"{len(bars)} bars from {bars[0][0]} to {bars[-1][0]}; total {_with_unit(plain_number(total), unit)}; "
            f"highest {highest[0]}: {_with_unit(plain_number(highest[1]), unit)}.")
    parts = _open(kind="bar", width=width, height=height, title=title, desc=desc)
    _y_axis(parts, top=top, step=step, x0=left, x1=width - right, y0=y0, plot_height=plot_h, unit=unit)
    slot = plot_w / len(bars)
    gap = min(slot * 0.2, 6.0)
    label_every = max(1, math.ceil(len(bars) / max(1, max_labels)))
    for i, (label, value) in enumerate(bars):
        h = plot_h * max(value, 0.0) / top
        x = left + i * slot + gap / 2
        parts.append(f'<rect class="chart-bar" x="{_num(x)}" y="{_num(y0 - h)}" width="{_num(slot - gap)}" '
                     f'height="{_num(h)}"><title>{escape(label)}: {escape(_with_unit(plain_number(value), unit))}'
                     "</title></rect>")
        if i % label_every == 0:
            parts.append(f'<text class="chart-label" x="{_num(x + (slot - gap) / 2)}" y="{_num(y0 + 16)}" '
                         f'text-anchor="middle">{escape(_cut(label))}</text>')
    parts.append(f'<line class="chart-axis" x1="{_num(left)}" x2="{_num(width - right)}" y1="{_num(y0)}" '
                 f'y2="{_num(y0)}"/></svg>')
    return mark_safe("".join(parts))


def hbar_chart(*, bars: Sequence[tuple[str, float | None]], title: str, unit: str = "", max_value: float | None = None,
               value_format: Callable[[float], str] = plain_number, missing: str = "no data",
               width: int = 720, bar_height: int = 26) -> SafeString:
    """Horizontal bars with their values written beside them, e.g. a confirmation rate per camera.

    A None value (a rate with nothing to divide by) gets no bar and the `missing` text instead;
    `max_value` fixes the scale (1.0 for rates), else the largest value spans the width."""
    if not bars:
        return _empty(kind="hbar", title=title, width=width, height=80)
    label_w, value_w, pad = 200.0, 80.0, 6.0
    plot_w = width - label_w - value_w
    height = len(bars) * bar_height + 2 * pad
    values = [value for _, value in bars if value is not None]
    scale = max_value if max_value is not None else max(values, default=0.0)
    scale = scale if scale > 0 else 1.0

    def shown(value: float | None) -> str:
        return missing if value is None else _with_unit(value_format(value), unit)

    desc = "; ".join(f"{label}: {shown(value)}" for label, value in bars[:20])
    if len(bars) > 20:
        desc += f"; and {len(bars) - 20} more (see the table)"
    parts = _open(kind="hbar", width=width, height=height, title=title, desc=desc + ".")
    for i, (label, value) in enumerate(bars):
        y = pad + i * bar_height
        middle = y + bar_height / 2 + 4.5
        parts.append(f'<text class="chart-label" x="{_num(label_w - 8)}" y="{_num(middle)}" text-anchor="end">'
                     f"<title>{escape(label)}</title>{escape(_cut(label))}</text>")
        w = 0.0 if value is None else plot_w * min(max(value, 0.0), scale) / scale
        parts.append(f'<rect class="chart-bar{" chart-missing" if value is None else ""}" x="{_num(label_w)}" '
                     f'y="{_num(y + 3)}" width="{_num(w)}" height="{_num(bar_height - 6)}">'
                     f"<title>{escape(label)}: {escape(shown(value))}</title></rect>")
        parts.append(f'<text class="chart-value" x="{_num(label_w + w + 6)}" y="{_num(middle)}">'
                     f"{escape(shown(value))}</text>")
    parts.append(f'<line class="chart-axis" x1="{_num(label_w)}" x2="{_num(label_w)}" y1="{_num(pad)}" '
                 f'y2="{_num(height - pad)}"/></svg>')
    return mark_safe("".join(parts))


def histogram(*, series: Mapping[str, Sequence[float]], bins: int = 10, lo: float = 0.0, hi: float = 1.0,
              title: str) -> SafeString:
    """Counts of each series' values in `bins` equal bins over [lo, hi], the series side by side in
    each bin, with a legend: e.g. the scores of confirmed against dismissed alerts.

    A value equal to `hi` falls in the last bin; values outside [lo, hi] are left out, and the
    description says how many."""
    if bins < 1:
        raise ValueError(f"a histogram needs at least one bin, not {bins}")
    if not hi > lo:
        raise ValueError(f"a histogram's range must be increasing: lo={lo} is not below hi={hi}")
    width, height = 720, 260
    if not series or not any(series.values()):
        return _empty(kind="histogram", title=title, width=width, height=height)
    counts: dict[str, list[int]] = {}
    outside = 0
    for name, values in series.items():
        row = [0] * bins
        for value in values:
            if not lo <= value <= hi:
                outside += 1
                continue
            row[min(int((value - lo) / (hi - lo) * bins), bins - 1)] += 1
        counts[name] = row
    left, right, top_pad, bottom = 48.0, 12.0, 40.0, 34.0
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    y0 = top_pad + plot_h
    top, step = _nice_ceiling(max(max(row) for row in counts.values()))
    desc = "; ".join(f"{name}: {len(values)} values" for name, values in series.items())
    desc += f"; {bins} bins from {plain_number(lo)} to {plain_number(hi)}"
    desc += f"; {outside} value{'s' if outside != 1 else ''} outside that range not shown." if outside else "."
    parts = _open(kind="histogram", width=width, height=height, title=title, desc=desc)
    _y_axis(parts, top=top, step=step, x0=left, x1=width - right, y0=y0, plot_height=plot_h, unit="")
    bin_w = plot_w / bins
    gap = min(bin_w * 0.15, 6.0)
    bar_w = (bin_w - gap) / len(counts)
    edge = (hi - lo) / bins
    for s, (name, row) in enumerate(counts.items()):
        css = f"chart-series-{s % MAX_SERIES_CLASSES}"
        for b, count in enumerate(row):
            h = plot_h * count / top
            x = left + b * bin_w + gap / 2 + s * bar_w
            span = f"{plain_number(lo + b * edge)}–{plain_number(lo + (b + 1) * edge)}"
            parts.append(f'<rect class="chart-bar {css}" x="{_num(x)}" y="{_num(y0 - h)}" width="{_num(bar_w)}" '
                         f'height="{_num(h)}"><title>{escape(name)}, {escape(span)}: {count}</title></rect>')
    label_every = max(1, math.ceil(bins / 10))
    for b in range(0, bins + 1, label_every):
        parts.append(f'<text class="chart-label" x="{_num(left + b * bin_w)}" y="{_num(y0 + 16)}" '
                     f'text-anchor="middle">{escape(plain_number(lo + b * edge))}</text>')
    x = left
    for s, name in enumerate(counts):
        css = f"chart-series-{s % MAX_SERIES_CLASSES}"
        parts.append(f'<rect class="chart-swatch {css}" x="{_num(x)}" y="10" width="12" height="12"/>'
                     f'<text class="chart-legend" x="{_num(x + 17)}" y="20">{escape(_cut(name))}</text>')
        x += 17 + 7.5 * len(_cut(name)) + 20
    parts.append(f'<line class="chart-axis" x1="{_num(left)}" x2="{_num(width - right)}" y1="{_num(y0)}" '
                 f'y2="{_num(y0)}"/></svg>')
    return mark_safe("".join(parts))
