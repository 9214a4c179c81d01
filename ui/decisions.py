"""The decision buttons for one photo, and what happens when one is pressed."""

from __future__ import annotations

from typing import Callable, Optional

import streamlit as st

from db.records import ImageSummary
from foodclf import moderation
from foodclf.errors import FoodclfError, ReviewConflict
from foodclf.labels import NOT_FOOD, display_label
from foodclf.moderation import Decision, Saved
from ui import cache
from ui.identity import acting_as, current_reviewer
from ui.messages import flash, unexpected

CONFLICTS = "conflicts"  # image id -> the ReviewConflict message, shown on that photo once


OnSaved = Callable[[Saved], None]
OnConflict = Callable[[ImageSummary], None]


def decision_controls(
    key: str,
    photo: ImageSummary,
    *,
    labels: list[str],
    on_saved: Optional[OnSaved] = None,
    on_conflict: Optional[OnConflict] = None,
    shortcuts: bool = False,
) -> None:
    """Confirm / Not food / Skip buttons and a Correct row for one photo; each saves at once.

    The buttons use callbacks, which run before the next script run: a page redraws with the
    decision already saved (the queue advances at once instead of flashing the old photo).
    A person whose role does not include decisions (a viewer) gets no buttons at all.
    """
    if current_reviewer() is None:
        st.caption(":material/visibility: Read only: your role does not include recording decisions.")
        return
    disabled = not photo.scores
    top = photo.predicted_label or ""
    context = (photo, on_saved, on_conflict)
    st.button(
        f"Confirm: {display_label(top)}" if top else "Confirm",
        key=f"{key}_confirm",
        type="primary",
        icon=":material/check:",
        disabled=disabled,
        on_click=_decide,
        args=(Decision("confirmed"), *context),
        shortcut="Y" if shortcuts else None,
        width="stretch",
    )
    buttons = st.columns(2)
    buttons[0].button(
        "Not food",
        key=f"{key}_not_food",
        icon=":material/no_food:",
        disabled=disabled,
        on_click=_decide,
        args=(Decision("not_food", NOT_FOOD), *context),
        shortcut="N" if shortcuts else None,
        width="stretch",
    )
    buttons[1].button(
        "Skip",
        key=f"{key}_skip",
        icon=":material/skip_next:",
        disabled=disabled,
        on_click=_decide,
        args=(Decision("skipped"), *context),
        shortcut="S" if shortcuts else None,
        width="stretch",
        help="Saved as skipped: the photo stays in the queue for someone else.",
    )
    st.selectbox(
        "Correct to",
        [label for label in labels if label != NOT_FOOD] + [NOT_FOOD],
        index=None,
        key=f"{key}_label",
        format_func=display_label,
        placeholder="Search every known category…",
        disabled=disabled,
    )
    row = st.columns([1.5, 1], vertical_alignment="bottom")
    row[0].text_input(
        "…or a new category", key=f"{key}_new", placeholder="e.g. Bao buns", disabled=disabled, max_chars=100
    )
    row[1].button(
        "Save correction",
        key=f"{key}_correct",
        icon=":material/edit:",
        disabled=disabled,
        width="stretch",
        on_click=_correct,
        args=(key, *context),
    )


def _correct(key: str, photo: ImageSummary, on_saved, on_conflict) -> None:
    """The Correct button's callback: validate the chosen or typed category, then save."""
    try:
        decision = moderation.correction(st.session_state.get(f"{key}_label"), st.session_state.get(f"{key}_new"))
    except FoodclfError as err:  # UnknownCategory: the message says what to do
        flash("error", str(err))
        return
    _decide(decision, photo, on_saved, on_conflict)


def _decide(decision: Decision, photo: ImageSummary, on_saved, on_conflict) -> None:
    """Save one decision (a button callback); the outcome is flashed, a conflict kept for its photo."""
    reviewer = acting_as("decide")  # checked again at the click, whatever the page showed; refusals are flashed
    if reviewer is None:
        return
    try:
        saved = moderation.save_decision(cache.engine(), photo, decision, reviewer=reviewer)
    except ReviewConflict as err:
        st.session_state.setdefault(CONFLICTS, {})[photo.image_id] = str(err)
        if on_conflict is not None:
            on_conflict(photo)
        return
    except FoodclfError as err:
        flash("error", str(err))
        return
    except Exception as err:  # noqa: BLE001
        flash("error", unexpected(err, "saving a decision"))
        return
    cache.clear_stats(new_label=saved.action == "corrected")
    flash("success", moderation.describe(saved))
    if on_saved is not None:
        on_saved(saved)


def conflict_notice(photo: ImageSummary) -> None:
    """Show, once, that someone else decided on this photo first."""
    message = st.session_state.get(CONFLICTS, {}).pop(photo.image_id, None)
    if message:
        st.warning(message + " Its current state is shown below; decide again to replace it.", icon=":material/group:")
