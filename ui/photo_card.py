"""A photo as the pages show it: the picture, the model's answer, the decision in force and its history."""

from __future__ import annotations

from typing import Optional, Union

import pandas as pd
import streamlit as st

from db.records import ImageSummary
from foodclf import moderation
from foodclf.errors import FoodclfError
from foodclf.labels import display_label
from foodclf.store import open_store
from ui import cache, charts
from ui.decisions import (
    OnConflict,
    OnSaved,
    browser_guard,
    conflict_notice,
    correction_controls,
    decision_buttons,
)


def photo_card(
    photo: ImageSummary,
    *,
    key: str,
    labels: list[str],
    caption: str,
    image: Union[bytes, None] = None,
    notice: Optional[str] = None,
    max_height: int = 560,
    on_saved: Optional[OnSaved] = None,
    on_conflict: Optional[OnConflict] = None,
    shortcuts: bool = False,
):
    """One photo to judge: the picture and its caption on the left; on the right a notice, any
    conflict, the decision in force, the decision buttons, the model's answer and the correction.

    The buttons come first on the right, so on a phone (where the columns stack) they sit right
    under the photo, and on a wide screen beside it at eye level.

    Args:
        key: unique per photo on the page (widget keys derive from it).
        image: bytes to show instead of the stored file (an upload being classified).
        notice: an info line above the answer (e.g. "already stored").

    Returns:
        The right-hand column, for anything a page adds below the buttons.
    """
    left, right = st.columns([1.3, 1], gap="medium")  # stacked on a phone: the gap is between photo and buttons
    with left:
        with st.container(gap=None):  # the guard's empty element takes no room above the photo
            browser_guard(key, photo)
            if image is not None:
                st.image(image, width="stretch")
            else:
                show_photo(photo, max_height)
        st.caption(caption)
    with right:
        if notice:
            st.info(notice, icon=":material/history:")
        conflict_notice(photo)
        current_decision(photo)
        decision_buttons(key, photo, on_saved=on_saved, on_conflict=on_conflict, shortcuts=shortcuts)
        prediction_panel(photo.scores, bool(photo.uncertain), chart_key=f"{key}_chart")
        correction_controls(key, photo, labels=labels, on_saved=on_saved, on_conflict=on_conflict)
    return right


def show_photo(photo: ImageSummary, max_height: int = 560) -> None:
    """The stored photo, large but never taller than `max_height` px, so the decisions stay in view."""
    data = photo_bytes(photo)
    if data is not None:
        st.image(data, width=max(160, min(900, int(max_height * photo.width / max(1, photo.height)))))


def photo_bytes(photo: ImageSummary) -> Optional[bytes]:
    """A stored photo's bytes (from the folder or the object store), or None with a warning saying why."""
    try:
        return open_store(cache.settings().image_dir).read(photo.stored_path)
    except ValueError:
        message = "This photo's file is missing from the image store (FOODCLF_IMAGE_DIR)."
    except FoodclfError as err:
        message = str(err)
    st.warning(message, icon=":material/hide_image:")
    return None


def prediction_panel(scores: list[dict], uncertain: bool, *, chart_key: Optional[str] = None) -> None:
    """The top category and its probability in large type, an uncertain badge, the top-k bars."""
    if not scores:
        st.info("No prediction stored for this photo.")
        return
    top = scores[0]
    st.metric(
        "Model's answer", display_label(top["label"]), f"{top['score']:.1%} sure", delta_color="off", delta_arrow="off"
    )
    if uncertain:
        st.badge("Uncertain — please check", icon=":material/help:", color="orange")
    st.altair_chart(charts.scores_chart(scores), key=chart_key, width="stretch")


def current_decision(photo: ImageSummary) -> None:
    """A line saying what the photo's current decision is, if it has one."""
    if photo.current_review_id is None:
        return
    what = moderation.ACTION_WORDS.get(photo.action or "", photo.action or "")
    label = "" if photo.action == "not_food" else f" {display_label(photo.final_label or '')}"
    when = photo.reviewed_at.strftime("%Y-%m-%d %H:%M UTC") if photo.reviewed_at else ""
    st.success(f"{what}{label} by {photo.reviewed_by or 'someone'} · {when}", icon=":material/verified:")


def history_table(events: list[dict]) -> None:
    """A photo's predictions and decisions, newest first, or a line saying there are none."""
    rows = moderation.history_rows(events)
    if not rows:
        st.caption("No history yet.")
        return
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
