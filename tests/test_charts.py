"""The SVG charts: well-formed XML, one bar per value, labels kept as text, accessible names."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from alerts.charts import bar_chart, hbar_chart, histogram, percent

SVG = "{http://www.w3.org/2000/svg}"
EVIL = '<script>alert("x")</script> & Co'


def _parse(markup: str) -> ET.Element:
    return ET.fromstring(markup)


def _bars(root: ET.Element) -> list[ET.Element]:
    return [rect for rect in root.iter(f"{SVG}rect") if "chart-bar" in rect.get("class", "").split()]


def _texts(root: ET.Element) -> list[str]:
    return ["".join(element.itertext()) for element in root.iter() if element.tag in (f"{SVG}text", f"{SVG}title")]


def test_it_draws_one_vertical_bar_per_value_scaled_to_the_largest() -> None:
    root = _parse(bar_chart(bars=[("Mon", 2), ("Tue", 0), ("Wed", 8), ("Thu", 5)], title="Alerts per day",
                            unit="alerts"))

    bars = _bars(root)
    assert len(bars) == 4
    heights = [float(bar.get("height", "")) for bar in bars]
    assert heights[1] == 0 and max(heights) == heights[2]
    assert heights[0] / heights[2] == pytest.approx(2 / 8)
    assert root.get("role") == "img" and root.get("aria-label") == "Alerts per day"
    assert root.find(f"{SVG}title") is not None and root.find(f"{SVG}title").text == "Alerts per day"  # type: ignore[union-attr]
    assert root.get("viewBox") and root.get("width") is None  # scales to its container
    assert [title.text for bar in bars for title in bar.iter(f"{SVG}title")][2] == "Wed: 8 alerts"


def test_it_labels_only_some_days_when_there_are_many() -> None:
    days = [(f"{d:02d} Jun", d % 4) for d in range(1, 91)]

    root = _parse(bar_chart(bars=days, title="Alerts per day", max_labels=10))

    assert len(_bars(root)) == 90
    labels = [el for el in root.iter(f"{SVG}text") if el.get("class") == "chart-label"]
    assert 1 < len(labels) <= 10
    assert labels[0].text == "01 Jun"


def test_it_draws_horizontal_bars_with_their_values_and_no_bar_for_a_missing_rate() -> None:
    root = _parse(hbar_chart(bars=[("Aisle 1", 0.5), ("Door", None), ("Till", 1.0)], title="Confirmation rate",
                             max_value=1.0, value_format=percent, missing="nothing reviewed"))

    bars = _bars(root)
    assert len(bars) == 3
    widths = [float(bar.get("width", "")) for bar in bars]
    assert widths[1] == 0 and widths[0] == pytest.approx(widths[2] / 2)
    values = [el.text for el in root.iter(f"{SVG}text") if el.get("class") == "chart-value"]
    assert values == ["50 %", "nothing reviewed", "100 %"]


def test_it_keeps_a_label_with_markup_as_text() -> None:
    for markup in (bar_chart(bars=[(EVIL, 3)], title=EVIL, unit=EVIL),
                   hbar_chart(bars=[(EVIL, 0.2)], title=EVIL),
                   histogram(series={EVIL: [0.1, 0.2], "dismissed": [0.9]}, title=EVIL)):
        assert "<script>" not in markup
        root = _parse(markup)
        assert not list(root.iter("script")) and not list(root.iter(f"{SVG}script"))
        assert root.get("aria-label") == EVIL
        assert any(EVIL in text for text in _texts(root))


def test_it_puts_each_series_side_by_side_in_each_bin_with_a_legend() -> None:
    scores = {"confirmed": [0.05, 0.91, 0.95, 1.0], "dismissed": [0.1, 0.15, 0.5, 0.55, 1.5]}

    root = _parse(histogram(series=scores, bins=10, title="Scores of confirmed and dismissed alerts"))

    bars = _bars(root)
    assert len(bars) == 20  # 10 bins x 2 series
    by_series: dict[str, list[float]] = {"chart-series-0": [], "chart-series-1": []}
    for bar in bars:
        series = next(c for c in bar.get("class", "").split() if c.startswith("chart-series-"))
        by_series[series].append(float(bar.get("height", "")))
    unit = max(h for heights in by_series.values() for h in heights) / 3  # the largest bin holds 3
    counts = {name: [round(h / unit) for h in heights] for name, heights in by_series.items()}
    assert counts["chart-series-0"] == [1, 0, 0, 0, 0, 0, 0, 0, 0, 3]  # 1.0 falls in the last bin
    assert counts["chart-series-1"] == [0, 2, 0, 0, 0, 2, 0, 0, 0, 0]  # 1.5 is outside 0..1: left out
    legend = [el.text for el in root.iter(f"{SVG}text") if el.get("class") == "chart-legend"]
    assert legend == ["confirmed", "dismissed"]
    assert "1 value outside that range" in (root.find(f"{SVG}desc").text or "")  # type: ignore[union-attr]


def test_it_says_no_data_rather_than_drawing_an_empty_frame() -> None:
    for markup in (bar_chart(bars=[], title="Empty"), hbar_chart(bars=[], title="Empty"),
                   histogram(series={"confirmed": [], "dismissed": []}, title="Empty")):
        root = _parse(markup)
        assert not _bars(root)
        assert "No data for this period." in _texts(root)


def test_it_refuses_a_histogram_without_bins_or_range() -> None:
    with pytest.raises(ValueError, match="at least one bin"):
        histogram(series={"a": [0.5]}, bins=0, title="x")
    with pytest.raises(ValueError, match="must be increasing"):
        histogram(series={"a": [0.5]}, lo=1.0, hi=1.0, title="x")
