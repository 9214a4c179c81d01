"""Export: moderators' decisions as CSV, JSON Lines, or an image-folder zip to fine-tune a model on."""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd
import streamlit as st

from foodclf import export
from foodclf.errors import FoodclfError
from foodclf.export import ExportFilters
from foodclf.labels import display_label
from ui import access, cache, dates, downloads, guards, identity, messages, navigation

navigation.ensure_routed()  # a page opened first on a fresh server routes through dashboard.py
access.require_page("export")  # signed in, and a role that includes this page; else a refusal and a stop

READY = "export_ready"  # ((format, filters), downloads.Link): the last file prepared, until the choice changes
PREVIEW_ROWS = 10
# The preview shows the decision first (who decided what), so action and reviewer are in view
# without a horizontal scroll; the exported file keeps its own column order (EXPORT_COLUMNS).
PREVIEW_COLUMNS = (
    "file_name",
    "final_label",
    "action",
    "reviewer",
    "reviewed_at",
    "predicted_label",
    "predicted_score",
    "content_id",
)


def _choices(labels: list[str]) -> tuple[str, ExportFilters]:
    with st.container(border=True):
        fmt = st.radio(
            "Format",
            list(export.FORMATS),
            key="e_format",
            horizontal=True,
            format_func=lambda key: export.FORMATS[key][0],
        )
        cols = st.columns([1, 1.5, 2], vertical_alignment="bottom")  # room for the whole date range
        only_corrected = cols[0].toggle(
            "Only corrections",
            key="e_corrected",
            help="Only decisions that changed the model's label (corrected, not food).",
        )
        since, until = dates.date_range(
            cols[1].date_input("Decided between", value=(), key="e_dates", format="YYYY-MM-DD")
        )
        chosen = cols[2].multiselect(
            "Categories", labels, key="e_labels", format_func=display_label, placeholder="All categories"
        )
    return fmt, ExportFilters(only_corrected=only_corrected, since=since, until=until, labels=tuple(chosen))


def _build(fmt: str, filters: ExportFilters, total: int) -> None:
    actor = identity.acting_as("export")  # checked again at the click, and recorded with the export
    if actor is None:
        messages.show_flash()
        return
    bar = st.progress(0.0, text="Preparing the export…")

    def step(done: int, expected: int) -> None:
        bar.progress(min(1.0, done / expected) if expected else 1.0, text=f"Exported {done:,} of {expected:,}")

    try:
        built = export.build_export(
            cache.engine(),
            cache.settings().image_dir,
            fmt,
            filters,
            actor=actor,
            folder=downloads.folder(),
            total=total,
            progress=step,
            stamp=datetime.now(timezone.utc).strftime("%Y%m%d-%H%M"),
        )
        link = downloads.offer(built, actor)  # the file waits on disk for one click; never in memory
    except Exception as err:  # noqa: BLE001  (FoodclfError messages are shown as they are)
        bar.empty()
        st.error(str(err) if isinstance(err, FoodclfError) else messages.unexpected(err, "exporting"))
        return
    bar.empty()
    st.session_state[READY] = ((fmt, filters), link)


def _offered(fmt: str, filters: ExportFilters) -> downloads.Link | None:
    """The link prepared for this choice, if any; a link for an earlier choice is withdrawn with its file."""
    ready = st.session_state.get(READY)
    if ready is None:
        return None
    if ready[0] != (fmt, filters):
        downloads.withdraw(ready[1])
        del st.session_state[READY]
        return None
    return ready[1]


st.title("Export labels")
st.caption("Moderators' current decisions, one row per reviewed photo — to analyse, or to train the next model.")
engine = guards.engine_or_stop()
database_url = cache.settings().database_url
decided = cache.decided_labels(database_url)
fmt, filters = _choices(sorted(decided, key=str.casefold))

counts = decided if filters == ExportFilters() else cache.export_counts(database_url, filters)
total = sum(counts.values())
if not decided:
    st.info("No reviews yet: decisions made in the review queue show up here.", icon=":material/rate_review:")
    st.stop()

cols = st.columns(3)
cols[0].metric("Rows", f"{total:,}", border=True)
cols[1].metric("Categories", f"{len(counts):,}", border=True)
cols[2].metric("Format", export.FORMATS[fmt][0].split(" (")[0], border=True)
if not total:
    st.warning("Nothing matches these filters; widen them to export.", icon=":material/filter_list:")
    st.stop()

preview, per_label = st.columns([2.2, 1], gap="medium")
with preview:
    st.markdown(f"**First {min(PREVIEW_ROWS, total)} rows**")
    st.dataframe(
        pd.DataFrame(export.export_preview(engine, filters, PREVIEW_ROWS)),
        hide_index=True,
        width="stretch",
        column_order=PREVIEW_COLUMNS,
        column_config={
            "file_name": st.column_config.TextColumn("file_name", width="medium"),
            "action": st.column_config.TextColumn("action", width="small"),
            "reviewer": st.column_config.TextColumn("reviewer", width="small"),
            "predicted_score": st.column_config.NumberColumn("predicted_score", format="%.3f", width="small"),
            "content_id": st.column_config.TextColumn("content_id", width="small"),
        },
    )
with per_label:
    st.markdown("**Rows per category**")
    st.dataframe(
        pd.DataFrame({"category": [display_label(k) for k in counts], "rows": list(counts.values())}),
        hide_index=True,
        width="stretch",
        height=min(400, 38 + 35 * len(counts)),
    )

if st.button("Prepare download", key="e_build", type="primary", icon=":material/package_2:"):
    _build(fmt, filters, total)
link = _offered(fmt, filters)
if link is not None:
    st.link_button(
        f"Download {link.file_name} ({link.size / 1024:,.0f} KB, {link.rows:,} rows)",
        link.url,
        key="e_download",
        type="primary",
        icon=":material/download:",
    )
    st.caption(
        f"The link works once, within {downloads.REGISTRY.ttl_s // 60:.0f} minutes, while this page stays open; "
        "the file is then deleted from the server. Prepare it again for another copy."
    )
    if link.missing:
        st.warning(
            f"{len(link.missing)} photo file(s) were missing from the image folder and are not in the "
            "zip: " + ", ".join(cid[:12] for cid in link.missing[:10]),
            icon=":material/hide_image:",
        )
