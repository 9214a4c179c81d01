"""Pieces the pages share: who is reviewing, messages, the prediction panel and the decision controls."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from typing import Callable, Optional

import pandas as pd
import streamlit as st

from db.records import ImageSummary
from foodclf import review
from foodclf.errors import FoodclfError, ReviewConflict
from foodclf.labels import NOT_FOOD, display_label
from foodclf.review import Decision, Saved
from foodclf.store import ImageStore
from pages import _cache, _charts

log = logging.getLogger("foodclf.dashboard")

REVIEWER = "reviewer"  # the typed name, once per browser session
NAME_ENTRY = "reviewer_entry"  # the name field's widget key
FLASH = "flash"  # messages set by callbacks, shown once on the next run
CONFLICTS = "conflicts"  # image id -> the ReviewConflict message, shown on that photo once

GENERIC_ERROR = "Something went wrong on our side; the details are in the server log. Please try again."
ACTION_WORDS = {"confirmed": "Confirmed", "corrected": "Corrected to", "not_food": "Marked not food",
                "skipped": "Skipped"}


# ---- who is reviewing -----------------------------------------------------------------------

def login_configured() -> bool:
    """Streamlit adds is_logged_in to st.user only when an [auth] section is configured."""
    return "is_logged_in" in st.user.to_dict()


def current_reviewer() -> Optional[str]:
    """The logged-in user's name (Streamlit login) or the name typed this session; None if neither."""
    if login_configured():
        user = st.user.to_dict()
        if not user.get("is_logged_in"):
            return None
        return review.clean_reviewer_name(str(user.get("name") or user.get("email") or "")) or None
    return st.session_state.get(REVIEWER) or None


def _accept_name() -> None:
    st.session_state[REVIEWER] = review.clean_reviewer_name(st.session_state.get(NAME_ENTRY, ""))


def forget_name() -> None:
    """Sign the typed name out (another moderator takes the desk)."""
    st.session_state.pop(REVIEWER, None)
    st.session_state[NAME_ENTRY] = ""


def identity_prompt() -> Optional[str]:
    """Ask who is reviewing when we don't know yet; returns the reviewer or None."""
    name = current_reviewer()
    if name:
        return name
    with st.container(border=True):
        if login_configured():
            st.markdown("**Log in to save decisions** — each one is recorded under your account.")
            st.button("Log in", key="login", icon=":material/login:", on_click=st.login)
        else:
            st.text_input(
                "Who is reviewing? Your name is saved with each decision.",
                key=NAME_ENTRY, placeholder="Your name, then Enter", on_change=_accept_name, max_chars=100,
            )
            st.caption("Asked once per browser session. Nothing is saved until you enter it.")
    return None


# ---- messages and errors --------------------------------------------------------------------

def flash(kind: str, text: str) -> None:
    """Queue a message (success, info, warning, error) for the next run: callbacks can't draw in place."""
    st.session_state.setdefault(FLASH, []).append((kind, text))


def show_flash() -> None:
    """Show queued messages once: success as a toast, the rest inline."""
    for kind, text in st.session_state.pop(FLASH, []):
        if kind == "success":
            st.toast(text, icon=":material/check_circle:")
        else:
            getattr(st, kind)(text)


def unexpected(err: BaseException, doing: str) -> str:
    """Log the traceback of an error we did not foresee; return the line a moderator sees."""
    log.error("unexpected error while %s", doing, exc_info=err)
    return GENERIC_ERROR


def date_range(value) -> tuple[Optional[date], Optional[date]]:
    """A date_input range as (since, until), until inclusive; while only the first day is picked, from it on."""
    if isinstance(value, date):
        return value, value
    picked = tuple(value or ())
    if len(picked) == 2:
        return picked[0], picked[1]
    return (picked[0], None) if picked else (None, None)


def engine_or_stop():
    """The database engine, or an error a person can act on and the end of this page's run."""
    try:
        return _cache.engine()
    except FoodclfError as err:
        st.error(str(err), icon=":material/database:")
    except Exception as err:  # noqa: BLE001
        st.error(unexpected(err, "opening the database"))
    st.stop()


def classifier_or_stop():
    """The loaded classifier (waiting with a spinner), or the reason there is none and the end of the run."""
    try:
        return _cache.classifier()
    except FoodclfError as err:
        st.error(str(err), icon=":material/neurology:")
        st.button("Try loading the model again", key="model_retry_page", on_click=_cache.reload_model)
    except Exception as err:  # noqa: BLE001
        st.error(unexpected(err, "loading the model"))
    st.stop()


# ---- a photo and its prediction -------------------------------------------------------------

def show_photo(photo: ImageSummary, max_height: int = 560) -> None:
    """The stored photo, large but never taller than `max_height` px, so the decisions stay in view."""
    path = photo_path(photo)
    if path is not None:
        st.image(str(path), width=max(160, min(900, int(max_height * photo.width / max(1, photo.height)))))


def photo_path(photo: ImageSummary) -> Optional[Path]:
    """Where a stored photo's file is, or None (with a warning) when it is missing from the store."""
    try:
        path = ImageStore(_cache.settings().image_dir).path(photo.stored_path)
    except ValueError:
        path = None
    if path is None or not path.is_file():
        st.warning("This photo's file is missing from the image folder (FOODCLF_IMAGE_DIR).",
                   icon=":material/hide_image:")
        return None
    return path


def prediction_panel(scores: list[dict], uncertain: bool, *, chart_key: Optional[str] = None) -> None:
    """The top category and its probability in large type, an uncertain badge, the top-k bars."""
    if not scores:
        st.info("No prediction stored for this photo.")
        return
    top = scores[0]
    st.metric("Model's answer", display_label(top["label"]), f"{top['score']:.1%} sure",
              delta_color="off", delta_arrow="off")
    if uncertain:
        st.badge("Uncertain — please check", icon=":material/help:", color="orange")
    st.altair_chart(_charts.scores_chart(scores), key=chart_key, width="stretch")


def current_decision(photo: ImageSummary) -> None:
    """A line saying what the photo's current decision is, if it has one."""
    if photo.current_review_id is None:
        return
    what = ACTION_WORDS.get(photo.action or "", photo.action or "")
    label = "" if photo.action == "not_food" else f" {display_label(photo.final_label or '')}"
    when = photo.reviewed_at.strftime("%Y-%m-%d %H:%M UTC") if photo.reviewed_at else ""
    st.success(f"{what}{label} by {photo.reviewed_by or 'someone'} · {when}", icon=":material/verified:")


def history_table(events: list[dict]) -> None:
    """A photo's predictions and decisions, newest first, or a line saying there are none."""
    rows = review.history_rows(events)
    if not rows:
        st.caption("No history yet.")
        return
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


# ---- decisions ------------------------------------------------------------------------------

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
    Without a reviewer the controls are disabled, with a hint.
    """
    disabled = current_reviewer() is None or not photo.scores
    top = photo.predicted_label or ""
    context = (photo, on_saved, on_conflict)
    st.button(
        f"Confirm: {display_label(top)}" if top else "Confirm", key=f"{key}_confirm", type="primary",
        icon=":material/check:", disabled=disabled, on_click=_decide, args=(Decision("confirmed"), *context),
        shortcut="Y" if shortcuts else None, width="stretch",
    )
    buttons = st.columns(2)
    buttons[0].button(
        "Not food", key=f"{key}_not_food", icon=":material/no_food:", disabled=disabled,
        on_click=_decide, args=(Decision("not_food", NOT_FOOD), *context),
        shortcut="N" if shortcuts else None, width="stretch",
    )
    buttons[1].button(
        "Skip", key=f"{key}_skip", icon=":material/skip_next:", disabled=disabled,
        on_click=_decide, args=(Decision("skipped"), *context), shortcut="S" if shortcuts else None,
        width="stretch", help="Saved as skipped: the photo stays in the queue for someone else.",
    )
    st.selectbox(
        "Correct to", [label for label in labels if label != NOT_FOOD] + [NOT_FOOD], index=None,
        key=f"{key}_label", format_func=display_label, placeholder="Search every known category…",
        disabled=disabled,
    )
    row = st.columns([1.5, 1], vertical_alignment="bottom")
    row[0].text_input("…or a new category", key=f"{key}_new", placeholder="e.g. Bao buns", disabled=disabled,
                      max_chars=100)
    row[1].button(
        "Save correction", key=f"{key}_correct", icon=":material/edit:", disabled=disabled, width="stretch",
        on_click=_correct, args=(key, *context),
    )
    if current_reviewer() is None:
        st.caption(":material/lock: Enter your name above to save decisions.")


def _correct(key: str, photo: ImageSummary, on_saved, on_conflict) -> None:
    """The Correct button's callback: validate the chosen or typed category, then save."""
    try:
        decision = review.correction(st.session_state.get(f"{key}_label"), st.session_state.get(f"{key}_new"))
    except FoodclfError as err:  # UnknownCategory: the message says what to do
        flash("error", str(err))
        return
    _decide(decision, photo, on_saved, on_conflict)


def _decide(decision: Decision, photo: ImageSummary, on_saved, on_conflict) -> None:
    """Save one decision (a button callback); the outcome is flashed, a conflict kept for its photo."""
    reviewer = current_reviewer()
    if reviewer is None:
        flash("warning", "Enter your name first: each decision is saved with who made it.")
        return
    try:
        saved = review.save_decision(_cache.engine(), photo, decision, reviewer=reviewer)
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
    _cache.clear_stats(new_label=saved.action == "corrected")
    flash("success", describe(saved))
    if on_saved is not None:
        on_saved(saved)


def describe(saved: Saved) -> str:
    """'Confirmed Pizza', 'Corrected to Bao buns', 'Marked not food', 'Skipped'."""
    label = f" {display_label(saved.label)}" if saved.label and saved.action in ("confirmed", "corrected") else ""
    return ACTION_WORDS.get(saved.action, saved.action) + label


def conflict_notice(photo: ImageSummary) -> None:
    """Show, once, that someone else decided on this photo first."""
    message = st.session_state.get(CONFLICTS, {}).pop(photo.image_id, None)
    if message:
        st.warning(message + " Its current state is shown below; decide again to replace it.",
                   icon=":material/group:")
