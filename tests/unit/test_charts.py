"""`api.pages.charts.bar_chart`: well-formed SVG, one bar per value, labels escaped."""

import xml.etree.ElementTree as ET

from api.pages.charts import bar_chart

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def test_one_bar_per_value_scaled_to_the_largest() -> None:
    root = parse(bar_chart([("W10", 4), ("W11", 2), ("W12", 0)], "Tasks per week",
                           height=140))
    assert root.tag == f"{SVG}svg"
    bars = root.findall(f"{SVG}rect")
    assert len(bars) == 3
    heights = [float(bar.get("height", "")) for bar in bars]
    assert heights == [64.0, 32.0, 0.0]  # the plot is 140 - 36 - 40 = 64 high
    labels = [t.text for t in root.findall(f"{SVG}text") if t.get("class") == "label"]
    assert labels == ["W10", "W11", "W12"]
    assert root.findtext(f"{SVG}title") == "Tasks per week"


def test_labels_and_title_are_escaped() -> None:
    svg = bar_chart([("<b>&\"x'", 1.5)], 'a <script> & "quote"')
    root = parse(svg)
    assert "<script>" not in svg and "<b>" not in svg
    assert root.get("aria-label") == 'a <script> & "quote"'
    labels = [t.text for t in root.findall(f"{SVG}text") if t.get("class") == "label"]
    assert labels == ["<b>&\"x'"]


def test_missing_values_draw_an_empty_bar_and_a_dash() -> None:
    root = parse(bar_chart([("a", None), ("b", 0.5)], "Share", max_value=1.0,
                           value_format=lambda v: f"{v:.0%}"))
    bars = root.findall(f"{SVG}rect")
    assert len(bars) == 2 and float(bars[0].get("height", "")) == 0.0
    values = [t.text for t in root.findall(f"{SVG}text") if t.get("class") == "value"]
    assert values == ["-", "50%"]


def test_no_values_at_all_is_still_a_chart() -> None:
    root = parse(bar_chart([], "Nothing"))
    assert root.findall(f"{SVG}rect") == []
    assert parse(bar_chart([("a", 0), ("b", 0)], "Zeros")).findall(f"{SVG}rect")
