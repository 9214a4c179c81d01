"""Altair charts the pages draw: plain data in, a chart out; no database, no model."""

from __future__ import annotations

import altair as alt
import pandas as pd

from foodclf.labels import display_label

ACCENT = "#D9480F"  # the theme's primaryColor: the model's top answer
MUTED = "#F2B8A0"
BLUE = "#1C7ED6"


def scores_chart(class_scores: list[dict]) -> alt.Chart:
    """Horizontal bars of the top-k probabilities, highest on top, the top one in the accent colour."""
    data = pd.DataFrame(
        {
            "category": [display_label(s["label"]) for s in class_scores],
            "probability": [float(s["score"]) for s in class_scores],
            "top": [i == 0 for i in range(len(class_scores))],
        }
    )
    order = list(data["category"])
    base = alt.Chart(data).encode(
        y=alt.Y("category:N", sort=order, title=None, axis=alt.Axis(labelLimit=220)),
        x=alt.X("probability:Q", title=None, scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
        tooltip=[alt.Tooltip("category:N"), alt.Tooltip("probability:Q", format=".1%")],
    )
    bars = base.mark_bar(cornerRadiusEnd=3).encode(
        color=alt.condition(alt.datum.top, alt.value(ACCENT), alt.value(MUTED)),
    )
    text = base.mark_text(align="left", dx=4).encode(text=alt.Text("probability:Q", format=".1%"))
    return (bars + text).properties(height=max(90, 30 * len(order)))


def distribution_chart(data: pd.DataFrame) -> alt.Chart:
    """Grouped bars: photos per category as predicted and as decided (columns label, kind, photos)."""
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            y=alt.Y("label:N", sort="-x", title=None, axis=alt.Axis(labelLimit=200)),
            x=alt.X("photos:Q", title="Photos"),
            yOffset="kind:N",
            color=alt.Color(
                "kind:N", title=None, scale=alt.Scale(domain=["Predicted", "Decided"], range=[MUTED, ACCENT]),
                legend=alt.Legend(orient="top"),
            ),
            tooltip=["label:N", "kind:N", "photos:Q"],
        )
        .properties(height=alt.Step(9))
    )


def rate_chart(data: pd.DataFrame) -> alt.Chart:
    """Correction rate per category (columns label, reviewed, correction_rate)."""
    return (
        alt.Chart(data)
        .mark_bar(color=ACCENT)
        .encode(
            y=alt.Y("label:N", sort="-x", title=None, axis=alt.Axis(labelLimit=200)),
            x=alt.X("correction_rate:Q", title="Corrected", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
            tooltip=["label:N", "reviewed:Q", alt.Tooltip("correction_rate:Q", format=".0%")],
        )
        .properties(height=alt.Step(18))
    )


def confusion_chart(data: pd.DataFrame) -> alt.Chart:
    """Heat map predicted -> decided (columns predicted, decided, photos)."""
    base = alt.Chart(data).encode(
        x=alt.X("decided:N", title="Decided by a moderator", axis=alt.Axis(labelAngle=-40, labelLimit=140)),
        y=alt.Y("predicted:N", title="Predicted by the model", axis=alt.Axis(labelLimit=160)),
    )
    cells = base.mark_rect().encode(
        color=alt.Color("photos:Q", title="Photos", scale=alt.Scale(scheme="oranges")),
        tooltip=["predicted:N", "decided:N", "photos:Q"],
    )
    text = base.mark_text(fontSize=11).encode(
        text="photos:Q",
        color=alt.condition(alt.datum.photos > data["photos"].max() / 2, alt.value("white"), alt.value("black"))
        if len(data) else alt.value("black"),
    )
    return (cells + text).properties(height=alt.Step(26), width=alt.Step(40))


def histogram_chart(data: pd.DataFrame) -> alt.Chart:
    """Photos per confidence bin (columns low, high, photos)."""
    return (
        alt.Chart(data)
        .mark_bar(color=BLUE, binSpacing=1)
        .encode(
            x=alt.X("low:Q", bin="binned", title="Model confidence (top score)", axis=alt.Axis(format="%")),
            x2="high:Q",
            y=alt.Y("photos:Q", title="Photos"),
            tooltip=[alt.Tooltip("low:Q", format=".0%"), alt.Tooltip("high:Q", format=".0%"), "photos:Q"],
        )
        .properties(height=260)
    )


def volume_chart(data: pd.DataFrame) -> alt.Chart:
    """Photos added and decisions made per day (columns day, kind, count)."""
    return (
        alt.Chart(data)
        .mark_line(point=True)
        .encode(
            x=alt.X("day:T", title=None),
            y=alt.Y("count:Q", title=None),
            color=alt.Color("kind:N", title=None, scale=alt.Scale(range=[BLUE, ACCENT]), legend=alt.Legend(orient="top")),
            tooltip=[alt.Tooltip("day:T"), "kind:N", "count:Q"],
        )
        .properties(height=260)
    )


def reviewers_chart(data: pd.DataFrame) -> alt.Chart:
    """Decisions per reviewer, stacked by action (columns reviewer, action, decisions)."""
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            y=alt.Y("reviewer:N", sort="-x", title=None),
            x=alt.X("decisions:Q", title="Decisions"),
            color=alt.Color("action:N", title=None, legend=alt.Legend(orient="top"),
                            scale=alt.Scale(scheme="tableau10")),
            tooltip=["reviewer:N", "action:N", "decisions:Q"],
        )
        .properties(height=alt.Step(24))
    )
