"""Stats: what the model predicts, what moderators decide, and where they disagree, over a date range."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import streamlit as st

from foodclf.labels import display_label
from ui import access, cache, charts, dates, guards, messages, navigation

navigation.ensure_routed()  # a page opened first on a fresh server routes through dashboard.py
access.require_page("stats")  # signed in, and a role that includes this page; else a refusal and a stop

PERIODS = {"Last 7 days": 7, "Last 30 days": 30, "Last 90 days": 90, "All time": None, "Custom": -1}


def _period():
    """(since, until) of the chosen period, in UTC days (the store counts days in UTC)."""
    today = datetime.now(timezone.utc).date()
    cols = st.columns([2.2, 1.4], vertical_alignment="bottom")
    choice = cols[0].segmented_control("Period", list(PERIODS), default="Last 30 days", key="s_period")
    days = PERIODS.get(choice or "All time")
    if days == -1:
        return dates.date_range(
            cols[1].date_input(
                "From – to (UTC)",
                value=(today - timedelta(days=29), today),
                key="s_dates",
                format="YYYY-MM-DD",
                min_value=today - timedelta(days=365 * 20),
                max_value=today,
            )
        )
    if days is None:
        return None, None
    return today - timedelta(days=days - 1), today


def _panel(title: str, help: str, rows: list[dict], chart, name: str, empty: str) -> None:
    """A chart in a card, with its table as a CSV download."""
    with st.container(border=True):
        st.markdown(f"**{title}**", help=help)
        if not rows:
            st.caption(empty)
            return
        try:
            st.altair_chart(chart(rows), width="stretch")
        except Exception as err:  # noqa: BLE001  (one broken chart must not hide the others)
            st.error(messages.unexpected(err, f"drawing the {name} chart"))
        st.download_button(
            "Download CSV",
            pd.DataFrame(rows).to_csv(index=False),
            file_name=f"foodclf-{name}-{stamp}.csv",
            mime="text/csv",
            key=f"csv_{name}",
            icon=":material/download:",
            on_click="ignore",
            type="tertiary",
        )


st.title("Stats")
engine = guards.engine_or_stop()
since, until = _period()
stamp = f"{since or 'start'}_{until or 'now'}"
try:
    report = cache.stats(cache.settings().database_url, since, until)
except Exception as err:  # noqa: BLE001
    st.error(messages.unexpected(err, "computing statistics"))
    st.stop()

totals = report["summary"]
decided = totals["confirmed"] + totals["corrected"] + totals["not_food"]
changed = totals["corrected"] + totals["not_food"]
cols = st.columns(5)
cols[0].metric("Photos added", f"{totals['images']:,}", border=True)
cols[1].metric("Reviewed", f"{totals['reviewed']:,}", border=True)
cols[2].metric("Still unreviewed", f"{totals['unreviewed']:,}", border=True, help="Of the photos added in this period.")
cols[3].metric(
    "Corrected",
    f"{changed / decided:.0%}" if decided else "–",
    border=True,
    help="Share of current decisions that changed the model's label (corrections and not food).",
)
cols[4].metric("Reviewers", f"{totals['reviewers']:,}", border=True)


def _trends(until) -> None:
    """This week against last, and whether the model is drifting: for the week ending on the period's end."""
    end = until or datetime.now(timezone.utc).date()
    try:
        found = cache.week_trends(cache.settings().database_url, end)
    except Exception as err:  # noqa: BLE001  (the figures below still help)
        st.error(messages.unexpected(err, "computing this week's trends"))
        return
    start, end = found["week"]
    st.subheader(f"Trends: the week {start:%b %d} – {end:%b %d}", anchor="trends")
    if found["drift"]:
        st.warning(
            "**The model may be meeting photos it was not trained for.** This week against the four before — "
            + "; ".join(found["drift"])
            + ". Look at the uncertain photos in the review queue, and consider retraining (Models page).",
            icon=":material/warning:",
        )
    left, right = st.columns(2, gap="medium")
    with left:
        _panel(
            "Biggest movers",
            "Each category's share of the photos added this week (the model's top label) against its share "
            "the week before, in points: 0.05 is five points. Most changed first.",
            [row for row in found["movers"] if row["change"]],
            charts.movers_chart,
            "movers",
            "No category changed its share: too few photos this week and last.",
        )
    with right:
        _panel(
            "Uncertain photos and confidence per day",
            "Of the photos added each day: the share the model was unsure of, and its mean top score. Dashed: "
            "the four weeks before this one. Red points: days beyond the drift limits "
            "(FOODCLF_DRIFT_UNCERTAIN_RISE, FOODCLF_DRIFT_CONFIDENCE_DROP).",
            [row for row in found["daily"] if row["photos"]],
            lambda rows: charts.drift_chart(rows, found["baseline"]),
            "drift",
            "No photos in the last five weeks.",
        )


_trends(until)


def _agreement(since, until) -> None:
    """Cohen's kappa between each decision and its blind second opinion, per moderator and per category."""
    try:
        found = cache.agreement_report(cache.settings().database_url, since, until)
    except Exception as err:  # noqa: BLE001
        st.error(messages.unexpected(err, "computing the agreement between moderators"))
        return
    st.subheader("Agreement between moderators", anchor="agreement")
    total = found["overall"]
    if not total["pairs"]:
        st.caption(
            "No second opinions given in this period. A share of decisions (FOODCLF_SECOND_OPINION_SHARE) goes, "
            "blind, to another moderator on the Second opinions page."
        )
        return

    def shown(value) -> str:
        return "–" if value is None else f"{value:.2f}"

    cols = st.columns(3)
    cols[0].metric("Second opinions", f"{total['pairs']:,}", border=True)
    cols[1].metric("Agreed", f"{total['agreement']:.0%}", border=True)
    cols[2].metric(
        "Cohen's kappa",
        shown(total["kappa"]),
        border=True,
        help="Agreement beyond chance: 1 is full agreement, 0 no better than chance; – when every label was the same.",
    )
    tables = st.columns(2, gap="medium")
    for column, rows, first, name in (
        (tables[0], found["moderators"], "moderator", "Per moderator"),
        (tables[1], found["categories"], "label", "Per category"),
    ):
        frame = pd.DataFrame(rows)
        if first == "label":
            frame["label"] = frame["label"].map(display_label)
        column.markdown(f"**{name}**")
        column.dataframe(
            frame,
            hide_index=True,
            width="stretch",
            column_config={
                "agreement": st.column_config.NumberColumn("agreed share", format="percent"),
                "kappa": st.column_config.NumberColumn("kappa", format="%.2f"),
            },
        )


_agreement(since, until)

if totals["images"] == 0 and totals["decisions"] == 0:
    st.info(
        "No photos or reviews in this period yet. Try “All time”, or review some photos in the queue.",
        icon=":material/bar_chart:",
    )
    st.stop()
if decided == 0:
    st.info(
        "No reviews yet in this period: the charts of decisions fill in as moderators review photos.",
        icon=":material/rate_review:",
    )

left, right = st.columns(2, gap="medium")
with left:
    _panel(
        "Categories: predicted vs decided",
        "Photos per category: the model's top label for photos added in "
        "the period, and the moderators' current labels for decisions made in it.",
        report["distribution"],
        charts.distribution_chart,
        "categories",
        "No photos yet.",
    )
    _panel(
        "Confidence",
        "How sure the model was (top score) about photos added in the period.",
        report["histogram"],
        charts.histogram_chart,
        "confidence",
        "No predictions yet.",
    )
    _panel(
        "Decisions per reviewer",
        "Rows each moderator wrote in the period, by action. In the CSV, `decisions` counts confirmed, "
        "corrected and not food (a decision later undone still counts; the undo is an `undone` row); "
        "`review_rows` counts every row, so it is the sum of the five action columns.",
        report["reviewers"],
        charts.reviewers_chart,
        "reviewers",
        "No reviews yet.",
    )
with right:
    _panel(
        "Correction rate per category",
        "Of the decisions on photos the model put in a category, the share that changed its label.",
        report["rates"],
        charts.rate_chart,
        "correction-rates",
        "No reviews yet.",
    )
    _panel(
        "Predicted → corrected",
        "Which labels moderators changed into which: rows are the model's answer, columns the moderators'.",
        report["confusion"],
        charts.confusion_chart,
        "confusion",
        "No corrections in this period.",
    )
    _panel(
        "Volume per day",
        "Photos added and decisions made each day (UTC).",
        report["volume"],
        charts.volume_chart,
        "volume",
        "Nothing happened in this period.",
    )
