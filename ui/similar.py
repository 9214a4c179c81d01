"""Beside a photo being judged: its near-duplicates' earlier decision, and its most similar stored photos,
to which the moderator can pass the decision on in one go."""

from __future__ import annotations

from typing import Optional

import pandas as pd
import streamlit as st

from db.records import ImageSummary
from foodclf import moderation
from foodclf.labels import display_label
from foodclf.moderation import Decision
from ui import cache, decisions, identity, messages

K = 5  # similar photos shown
SIMILAR_VERSION = "similar_version"  # a new editor key clears the ticks after an apply


def near_duplicate_notice(
    photo: ImageSummary,
    *,
    key: str,
    on_saved: Optional[decisions.OnSaved] = None,
    on_conflict: Optional[decisions.OnConflict] = None,
) -> None:
    """If a near-duplicate of this undecided photo was decided, say so and offer that decision (key D)."""
    twins = moderation.near_duplicates(cache.engine(), photo)
    if not twins:
        return
    decided = [(twin, moderation.decision_in_force(twin)) for twin in twins]
    decided = [(twin, decision) for twin, decision in decided if decision is not None]
    if not decided or photo.current_review_id is not None:
        st.caption(f":material/content_copy: {len(twins)} near-duplicate{'s' * (len(twins) != 1)} stored.")
        return
    twin, decision = decided[0]
    said = "Not food" if decision.action == "not_food" else display_label(decision.label or "")
    st.info(
        f"A near-duplicate of this photo ({twin.file_name}, added {twin.added_at:%Y-%m-%d}) was decided: "
        f"**{said}** by {twin.reviewed_by or 'someone'}.",
        icon=":material/content_copy:",
    )
    decisions.decision_button(
        key,
        photo,
        decision,
        f"Same as its near-duplicate: {said}",
        on_saved=on_saved,
        on_conflict=on_conflict,
        shortcut="D",
        icon=":material/content_copy:",
    )


def similar_panel(photo: ImageSummary, *, key: str) -> None:
    """The K most similar stored photos with their labels; tick some and apply this photo's decision to them.

    The decision passed on is the one in force on this photo; on an undecided photo, the model's answer,
    saved on this photo too. Each is saved as its own conflict-checked review; refusals are listed per photo.
    """
    neighbours = moderation.similar_photos(cache.engine(), photo, K)
    with st.expander("Similar photos", icon=":material/photo_library:", expanded=bool(neighbours)):
        if neighbours is None:
            st.caption("Not indexed by this model yet: `python -m foodclf reclassify` adds it.")
            return
        if not neighbours:
            st.caption("No other photo is indexed by this model yet.")
            return
        image_dir = cache.settings().image_dir
        table = pd.DataFrame(
            {
                "photo": [cache.thumbnail_url(image_dir, n.photo.stored_path) for n in neighbours],
                "label": [_label(n.photo) for n in neighbours],
                "similarity": [max(0.0, n.score) for n in neighbours],
                "apply": [False] * len(neighbours),
            }
        )
        editor = f"{key}_similar_{st.session_state.setdefault(SIMILAR_VERSION, 0)}"
        edited = st.data_editor(
            table,
            key=editor,
            hide_index=True,
            width="stretch",
            disabled=["photo", "label", "similarity"],
            column_config={
                "photo": st.column_config.ImageColumn("Photo", width="small"),
                "label": st.column_config.TextColumn("Label now"),
                "similarity": st.column_config.ProgressColumn("Similarity", format="percent", min_value=0, max_value=1),
                "apply": st.column_config.CheckboxColumn("Apply?", help="Tick the photos this decision fits."),
            },
        )
        decision = _decision(photo)
        ticked = int(edited["apply"].sum())
        if decision is None:
            return
        this_too = photo.current_review_id is None
        said = "Not food" if decision.action == "not_food" else display_label(decision.label or "")
        st.button(
            f"Apply {said} to {ticked} ticked" + (" and this photo" if this_too else ""),
            key=f"{key}_similar_apply",
            icon=":material/done_all:",
            disabled=ticked == 0 or identity.current_reviewer() is None,
            on_click=_apply,
            args=(photo, [n.photo for n in neighbours], editor, decision, this_too),
        )


def _label(photo: ImageSummary) -> str:
    if photo.current_review_id is not None:
        return ("Not food" if photo.action == "not_food" else display_label(photo.final_label or "")) + " (decided)"
    return display_label(photo.predicted_label or "?") + " (model)"


def _decision(photo: ImageSummary) -> Optional[Decision]:
    decided = moderation.decision_in_force(photo)
    if decided is not None:
        return decided
    return Decision("corrected", photo.predicted_label) if photo.predicted_label else None


def _apply(photo: ImageSummary, shown: list[ImageSummary], editor: str, decision: Decision, this_too: bool) -> None:
    reviewer = identity.acting_as("decide")  # checked again at the click: a refusal is flashed
    if reviewer is None:
        return
    edits = st.session_state.get(editor, {}).get("edited_rows", {})
    chosen = [p for row, p in enumerate(shown) if edits.get(row, {}).get("apply")]
    result = moderation.save_decisions(
        cache.engine(), ([photo] if this_too else []) + chosen, decision, reviewer=reviewer
    )
    st.session_state[SIMILAR_VERSION] = st.session_state.get(SIMILAR_VERSION, 0) + 1
    cache.clear_stats(new_label=decision.action == "corrected")
    if result.saved:
        messages.flash("success", f"Saved on {len(result.saved)} photo{'s' * (len(result.saved) != 1)}")
    if result.refused:
        lines = "\n\n".join(f"- {p.file_name}: {why}" for p, why in result.refused)
        messages.flash("warning", "Not saved:\n\n" + lines)
