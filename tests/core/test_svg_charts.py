"""The reports' SVG charts: curves on the unit square, lines over time with gaps."""

from __future__ import annotations

from shipyard.core.svg_charts import Series, time_chart, unit_chart


def test_charts_draw_their_series_and_leave_gaps() -> None:
    curve = unit_chart([("roc", [0.0, 0.5, 1.0], [0.0, 0.8, 1.0], "#000")], "fpr", "tpr", "up")
    assert curve.count("<polyline") == 1 and "stroke-dasharray='4 3'" in curve
    line = time_chart(["a", "b", "c"], [Series("s", [1.0, None, 2.0], "#000")])
    assert line.count("<polyline") == 2  # one run either side of the gap
    assert time_chart(["a"], [Series("s", [None], "#000")]) == "<p class='muted'>no data in this window</p>"
