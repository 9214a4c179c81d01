"""The dashboard's charts as Vega-Lite specs: what a person sees named, in which order, explained."""

from __future__ import annotations

import pytest

from ui import charts


def _layer_spec(chart) -> tuple[dict, dict]:
    spec = chart.to_dict()
    return spec, spec["layer"][0]["encoding"]


@pytest.mark.parametrize(
    "scores",
    [
        # The order the browser showed wrongly: Steak 0.8 % drawn above Sushi 82.3 %.
        [{"label": "steak", "score": 0.008}, {"label": "sushi", "score": 0.823}, {"label": "pizza", "score": 0.169}],
        [{"label": "sushi", "score": 0.823}, {"label": "pizza", "score": 0.169}, {"label": "steak", "score": 0.008}],
    ],
)
def test_the_score_chart_names_every_category_highest_first(scores):
    spec, encoding = _layer_spec(charts.scores_chart(scores))
    assert encoding["y"]["sort"] == ["Sushi", "Pizza", "Steak"]
    # Every label drawn: none dropped as overlapping, and a fixed step per bar (three bars in a
    # fixed 102 px got ~17 px each, and Vega hid the middle name).
    assert encoding["y"]["axis"]["labelOverlap"] is False
    assert spec["height"] == {"step": charts.SCORE_STEP} and charts.SCORE_STEP >= 24
    # The accent goes to the highest score, wherever it came in the list.
    data = next(iter(spec["datasets"].values()))
    assert [(row["category"], row["top"]) for row in data] == [("Sushi", True), ("Pizza", False), ("Steak", False)]
