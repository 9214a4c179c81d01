"""Altair charts the pages draw: plain tables in (stored labels), a chart out; no database, no model."""

from __future__ import annotations

import altair as alt
import pandas as pd

from foodclf.labels import display_label

ACCENT = "#D9480F"  # the theme's primaryColor: the model's top answer, moderators' decisions
MUTED = "#F4B183"
BLUE = "#1C7ED6"
SCORE_STEP = 28  # px per bar of the score chart: room for a 13 px label on every bar
ACTION_COLOURS = {
    "confirmed": "#2F9E44",
    "corrected": "#7048E8",
    "not_food": "#868E96",
    "skipped": "#FAB005",
    "undone": "#E03131",
}


def _shown(data: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """A copy with stored labels in `columns` replaced by the names people read."""
    data = data.copy()
    for column in columns:
        data[column] = data[column].map(lambda label: display_label(str(label)))
    return data


def scores_chart(class_scores: list[dict]) -> alt.Chart:
    """Horizontal bars of the top-k probabilities: every category named, highest on top in the accent colour.

    Sorted here, whatever order the scores come in. Each bar gets a fixed step (not a share of a
    fixed height, where three bars got ~17 px and Vega dropped the labels that would overlap).
    """
    ranked = sorted(class_scores, key=lambda s: -float(s["score"]))
    names = [display_label(s["label"]) for s in ranked]
    data = pd.DataFrame(
        {
            "category": names,
            "probability": [float(s["score"]) for s in ranked],
            "top": [i == 0 for i in range(len(ranked))],
        }
    )
    base = alt.Chart(data).encode(
        y=alt.Y(
            "category:N",
            sort=names,
            title=None,
            axis=alt.Axis(labelLimit=220, labelFontSize=13, labelOverlap=False),
        ),
        x=alt.X("probability:Q", title=None, scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
        tooltip=[alt.Tooltip("category:N", title="Category"), alt.Tooltip("probability:Q", format=".1%")],
    )
    bars = base.mark_bar(cornerRadiusEnd=4, height={"band": 0.75}).encode(
        color=alt.condition(alt.datum.top, alt.value(ACCENT), alt.value(MUTED)),
    )
    text = base.mark_text(align="left", dx=4, fontSize=12).encode(text=alt.Text("probability:Q", format=".1%"))
    return (bars + text).properties(height=alt.Step(SCORE_STEP))


def distribution_chart(rows: list[dict], top: int = 25) -> alt.Chart:
    """Grouped bars per category: photos as predicted and as decided (the `top` biggest categories)."""
    data = _shown(pd.DataFrame(rows).head(top), "label")
    long = data.melt(id_vars="label", value_vars=["predicted", "decided"], var_name="kind", value_name="photos")
    long["kind"] = long["kind"].map({"predicted": "Predicted", "decided": "Decided"})
    return (
        alt.Chart(long)
        .mark_bar(cornerRadiusEnd=2)
        .encode(
            y=alt.Y("label:N", sort=list(data["label"]), title=None, axis=alt.Axis(labelLimit=200)),
            x=alt.X("photos:Q", title="Photos"),
            yOffset=alt.YOffset("kind:N", sort=["Predicted", "Decided"]),
            color=alt.Color(
                "kind:N",
                title=None,
                legend=alt.Legend(orient="top"),
                scale=alt.Scale(domain=["Predicted", "Decided"], range=[MUTED, ACCENT]),
            ),
            tooltip=[alt.Tooltip("label:N", title="Category"), "kind:N", "photos:Q"],
        )
        .properties(height=alt.Step(10))
    )


def rate_chart(rows: list[dict], top: int = 25) -> alt.Chart:
    """Share of decisions that changed the model's label, per predicted category."""
    data = _shown(pd.DataFrame(rows).head(top), "label")
    return (
        alt.Chart(data)
        .mark_bar(color=ACCENT, cornerRadiusEnd=2)
        .encode(
            y=alt.Y("label:N", sort="-x", title=None, axis=alt.Axis(labelLimit=200)),
            x=alt.X("correction_rate:Q", title="Corrected", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
            tooltip=[
                alt.Tooltip("label:N", title="Category"),
                alt.Tooltip("reviewed:Q", title="Reviewed"),
                alt.Tooltip("correction_rate:Q", title="Corrected", format=".0%"),
            ],
        )
        .properties(height=alt.Step(20))
    )


def confusion_chart(rows: list[dict]) -> alt.Chart:
    """Heat map: the model's label (rows) -> the moderators' label (columns), photos per cell."""
    data = _shown(pd.DataFrame(rows), "predicted", "decided")
    half = float(data["photos"].max()) / 2 if len(data) else 0.0
    base = alt.Chart(data).encode(
        x=alt.X("decided:N", title="Decided by a moderator", axis=alt.Axis(labelAngle=-35, labelLimit=140)),
        y=alt.Y("predicted:N", title="Predicted by the model", axis=alt.Axis(labelLimit=160)),
    )
    cells = base.mark_rect(cornerRadius=2).encode(
        color=alt.Color("photos:Q", title="Photos", scale=alt.Scale(scheme="oranges")),
        tooltip=[alt.Tooltip("predicted:N", title="Predicted"), alt.Tooltip("decided:N", title="Decided"), "photos:Q"],
    )
    text = base.mark_text(fontSize=12).encode(
        text="photos:Q",
        color=alt.condition(alt.datum.photos > half, alt.value("white"), alt.value("#1F2328")),
    )
    return (cells + text).properties(height=alt.Step(30))


def histogram_chart(rows: list[dict]) -> alt.Chart:
    """Photos per bin of the model's top score."""
    return (
        alt.Chart(pd.DataFrame(rows))
        .mark_bar(color=BLUE, binSpacing=2)
        .encode(
            x=alt.X("low:Q", bin="binned", title="Model confidence (top score)", axis=alt.Axis(format="%")),
            x2="high:Q",
            y=alt.Y("photos:Q", title="Photos"),
            tooltip=[
                alt.Tooltip("low:Q", title="From", format=".0%"),
                alt.Tooltip("high:Q", title="To", format=".0%"),
                "photos:Q",
            ],
        )
        .properties(height=260)
    )


def volume_chart(rows: list[dict]) -> alt.Chart:
    """Photos added and decisions made per day."""
    data = pd.DataFrame(rows)
    data["day"] = pd.to_datetime(data["day"])
    long = data.melt(id_vars="day", value_vars=["photos_added", "decisions"], var_name="kind", value_name="count")
    long["kind"] = long["kind"].map({"photos_added": "Photos added", "decisions": "Decisions"})
    return (
        alt.Chart(long)
        .mark_line(point=True, strokeWidth=2.5)
        .encode(
            x=alt.X("day:T", title=None, axis=alt.Axis(format="%b %d")),
            y=alt.Y("count:Q", title=None),
            color=alt.Color(
                "kind:N",
                title=None,
                legend=alt.Legend(orient="top"),
                scale=alt.Scale(domain=["Photos added", "Decisions"], range=[BLUE, ACCENT]),
            ),
            tooltip=[alt.Tooltip("day:T", format="%Y-%m-%d"), "kind:N", "count:Q"],
        )
        .properties(height=260)
    )


def movers_chart(rows: list[dict], top: int = 12) -> alt.Chart:
    """Diverging bars: each category's change in share of photos, this week against last (biggest movers)."""
    data = _shown(pd.DataFrame(rows).head(top), "label")
    data["direction"] = data["change"].map(lambda c: "Up" if c >= 0 else "Down")
    return (
        alt.Chart(data)
        .mark_bar(cornerRadiusEnd=2)
        .encode(
            y=alt.Y("label:N", sort=list(data["label"]), title=None, axis=alt.Axis(labelLimit=200)),
            x=alt.X("change:Q", title="Change in share of photos (points)", axis=alt.Axis(format="+.0%")),
            color=alt.Color("direction:N", legend=None, scale=alt.Scale(domain=["Up", "Down"], range=[ACCENT, BLUE])),
            tooltip=[
                alt.Tooltip("label:N", title="Category"),
                alt.Tooltip("share_before:Q", title="Last week", format=".1%"),
                alt.Tooltip("share:Q", title="This week", format=".1%"),
                alt.Tooltip("last_week:Q", title="Photos last week"),
                alt.Tooltip("this_week:Q", title="Photos this week"),
            ],
        )
        .properties(height=alt.Step(20))
    )


DRIFT_MEASURES = {"uncertain_share": "Uncertain photos", "mean_confidence": "Mean confidence"}


def drift_chart(rows: list[dict], baseline: dict) -> alt.Chart:
    """Per day, the share of uncertain photos and the mean top score, each with its baseline dashed;
    days beyond the drift limits are red points.

    rows: trends' daily rows (day, uncertain_share, mean_confidence, drifting); baseline: the
    earlier weeks' pooled value of each measure (None where there were no photos).
    """
    data = pd.DataFrame(rows)
    data["day"] = pd.to_datetime(data["day"])
    long = data.melt(
        id_vars=["day", "photos", "drifting"], value_vars=list(DRIFT_MEASURES), var_name="measure", value_name="value"
    ).dropna(subset=["value"])
    long["measure"] = long["measure"].map(DRIFT_MEASURES)
    x = alt.X("day:T", title=None, axis=alt.Axis(format="%b %d"))
    y = alt.Y("value:Q", title=None, axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1]))
    colour = alt.Color(
        "measure:N",
        title=None,
        legend=alt.Legend(orient="top"),
        scale=alt.Scale(domain=list(DRIFT_MEASURES.values()), range=[ACCENT, BLUE]),
    )
    tooltip = [
        alt.Tooltip("day:T", format="%Y-%m-%d"),
        "measure:N",
        alt.Tooltip("value:Q", format=".1%"),
        alt.Tooltip("photos:Q", title="Photos"),
    ]
    # Points too: a week with one busy day is one point per measure, which a line alone does not draw.
    lines = alt.Chart(long).mark_line(strokeWidth=2.5, point=True).encode(x=x, y=y, color=colour, tooltip=tooltip)
    flagged = (
        alt.Chart(long[long["drifting"]])
        .mark_point(filled=True, size=90, color="#E03131")
        .encode(x=x, y=y, tooltip=tooltip)
    )
    levels = pd.DataFrame(
        [dict(measure=DRIFT_MEASURES[k], value=baseline[k]) for k in DRIFT_MEASURES if baseline.get(k) is not None]
    )
    layers = [lines, flagged]
    if len(levels):
        layers.append(alt.Chart(levels).mark_rule(strokeDash=[5, 4], opacity=0.7).encode(y="value:Q", color=colour))
    return alt.layer(*layers).properties(height=260)


ACTION_NAMES = {  # the legend's words for each stored action
    "confirmed": "Confirmed",
    "corrected": "Corrected",
    "not_food": "Not food",
    "skipped": "Skipped",
    "undone": "Undo (took one back)",
}


def reviewers_chart(rows: list[dict]) -> alt.Chart:
    """Rows each reviewer wrote, stacked by action; the legend names every action, in rows under the chart.

    Above a half-width chart, five entries in one line were cut off (the red "undone" unexplained).
    """
    data = pd.DataFrame(rows)
    actions = [a for a in ACTION_COLOURS if a in data.columns]
    long = data.melt(id_vars="reviewer", value_vars=actions, var_name="action", value_name="rows")
    long = long[long["rows"] > 0]
    long["action"] = long["action"].map(ACTION_NAMES)
    return (
        alt.Chart(long)
        .mark_bar()
        .encode(
            y=alt.Y("reviewer:N", sort=list(data["reviewer"]), title=None),
            x=alt.X("rows:Q", title="Rows written (decisions, skips and undos)"),
            color=alt.Color(
                "action:N",
                title=None,
                legend=alt.Legend(orient="bottom", columns=3, labelLimit=200, symbolType="square"),
                scale=alt.Scale(domain=list(ACTION_NAMES.values()), range=list(ACTION_COLOURS.values())),
            ),
            tooltip=["reviewer:N", "action:N", alt.Tooltip("rows:Q", title="Rows")],
        )
        .properties(height=alt.Step(26))
    )
