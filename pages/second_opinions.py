"""Second opinions: decided photos shown again, blind, to a different moderator; disagreements go to an admin."""

from __future__ import annotations

import streamlit as st

from foodclf import moderation
from foodclf.errors import FoodclfError
from foodclf.labels import NOT_FOOD, display_label
from foodclf.moderation import Decision, SecondLook
from ui import access, cache, guards, messages, navigation
from ui.decisions import browser_guard
from ui.identity import acting_as, current_reviewer
from ui.photo_card import prediction_panel, show_photo

navigation.ensure_routed()  # a page opened first on a fresh server routes through dashboard.py
access.require_page("review")  # moderators and admins; else a refusal and a stop

PASSED = "so_passed"  # image ids this moderator passed over this session


def _give(look: SecondLook, decision: Decision) -> None:
    """A button's callback: record the second opinion on the photo as shown."""
    reviewer = acting_as("decide")
    if reviewer is None:
        return
    try:
        moderation.give_second_opinion(cache.engine(), look, decision, reviewer=reviewer)
    except FoodclfError as err:
        messages.flash("warning", str(err))
        return
    except Exception as err:  # noqa: BLE001
        messages.flash("error", messages.unexpected(err, "saving a second opinion"))
        return
    cache.clear_stats()
    messages.flash("success", f"Second opinion saved: {display_label(moderation.decided_label(look.photo, decision))}.")


def _correct(look: SecondLook, key: str) -> None:
    try:
        decision = moderation.correction(st.session_state.get(f"{key}_label"), st.session_state.get(f"{key}_new"))
    except FoodclfError as err:
        messages.flash("error", str(err))
        return
    _give(look, decision)


def _pass(image_id: int) -> None:
    st.session_state.setdefault(PASSED, set()).add(image_id)


st.title("Second opinions")
st.caption(
    "Photos another moderator has decided, shown without their decision. Say what you see; when you "
    "disagree, an admin settles it. Your own decisions never come back to you."
)
messages.show_flash()
engine = guards.engine_or_stop()
me = current_reviewer()
if me is None:
    st.info("Your role does not include recording decisions.", icon=":material/visibility:")
    st.stop()
passed = frozenset(st.session_state.setdefault(PASSED, set()))
try:
    look = moderation.next_second_opinion(engine, me, exclude=passed)
    waiting = moderation.second_opinions_waiting(engine, me)
except Exception as err:  # noqa: BLE001
    st.error(messages.unexpected(err, "reading the second-opinion queue"))
    st.stop()
st.metric("Waiting for a second opinion", f"{waiting:,}")
if look is None:
    st.success("Nothing waiting for your second opinion.", icon=":material/task_alt:")
    if passed:
        st.button("Show the ones I passed over", on_click=st.session_state[PASSED].clear)
    st.stop()

photo, key = look.photo, f"so_{look.opinion_id}"
labels = cache.known_labels()
with st.container(border=True):
    left, right = st.columns([1.3, 1], gap="medium")
    with left:
        with st.container(gap=None):
            browser_guard(key, photo)  # a double click's second half never lands on the next photo
            show_photo(photo)
        st.caption(f"{photo.file_name} · added {photo.added_at:%Y-%m-%d}")
    with right:
        candidates = moderation.candidates(photo)
        st.markdown("**What is it?**")
        row = st.container(horizontal=True, gap="small")
        for rank, label in enumerate(candidates):
            decision = Decision("confirmed") if rank == 0 else moderation.correction(label, None)
            row.button(
                display_label(label),
                key=f"{key}_pick{rank}",
                type="primary" if rank == 0 else "secondary",
                on_click=_give,
                args=(look, decision),
            )
        row.button(
            "Not food",
            key=f"{key}_not_food",
            icon=":material/no_food:",
            on_click=_give,
            args=(look, Decision("not_food", NOT_FOOD)),
        )
        prediction_panel(photo.scores, bool(photo.uncertain), chart_key=f"{key}_chart")
        st.selectbox(
            "Something else",
            [label for label in labels if label != NOT_FOOD],
            index=None,
            key=f"{key}_label",
            format_func=display_label,
            placeholder="Search every known category…",
        )
        st.text_input("…or a new category", key=f"{key}_new", placeholder="e.g. Bao buns", max_chars=100)
        st.button("Save", key=f"{key}_save", icon=":material/edit:", on_click=_correct, args=(look, key))
        st.button(
            "Pass",
            key=f"{key}_pass",
            icon=":material/skip_next:",
            type="tertiary",
            on_click=_pass,
            args=(photo.image_id,),
        )
