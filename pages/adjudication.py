"""Adjudication: an admin settles each disagreement between a decision and its blind second opinion."""

from __future__ import annotations

import streamlit as st

from foodclf import moderation
from foodclf.errors import FoodclfError
from foodclf.labels import NOT_FOOD, display_label
from foodclf.moderation import Decision, Dispute
from ui import access, cache, guards, messages, navigation
from ui.identity import acting_as
from ui.photo_card import prediction_panel, show_photo

navigation.ensure_routed()  # a page opened first on a fresh server routes through dashboard.py
access.require_page("adjudicate")  # admins only; else a refusal and a stop


def _settle(dispute: Dispute, decision: Decision) -> None:
    """A button's callback: the admin's decision becomes the photo's label."""
    admin = acting_as("adjudicate")
    if admin is None:
        return
    try:
        saved = moderation.adjudicate(cache.engine(), dispute, decision, admin=admin)
    except FoodclfError as err:
        messages.flash("warning", str(err))
        return
    except Exception as err:  # noqa: BLE001
        messages.flash("error", messages.unexpected(err, "settling a disagreement"))
        return
    cache.clear_stats()
    messages.flash("success", f"Settled: {moderation.describe(saved)}")


def _decision(label: str) -> Decision:
    return Decision("not_food", NOT_FOOD) if label == NOT_FOOD else Decision("corrected", label)


def _other(dispute: Dispute, key: str) -> None:
    choice = st.session_state.get(key)
    if not choice:
        messages.flash("error", "Pick a category first.")
        return
    _settle(dispute, _decision(choice))


st.title("Adjudication")
st.caption(
    "Photos where a moderator's decision and another moderator's blind second opinion differ. Your "
    "decision becomes the photo's label and is recorded with your name."
)
messages.show_flash()
engine = guards.engine_or_stop()
try:
    disputes, total = moderation.disputes(engine, limit=1)
except Exception as err:  # noqa: BLE001
    st.error(messages.unexpected(err, "reading the disagreements"))
    st.stop()
st.metric("Waiting to be settled", f"{total:,}")
if not disputes:
    st.success("No disagreements to settle.", icon=":material/task_alt:")
    st.stop()

dispute = disputes[0]
photo, key = dispute.photo, f"adj_{dispute.opinion_id}"
with st.container(border=True):
    left, right = st.columns([1.3, 1], gap="medium")
    with left:
        show_photo(photo)
        st.caption(f"{photo.file_name} · added {photo.added_at:%Y-%m-%d}")
    with right:
        for who, label, word in (
            (dispute.first_reviewer, dispute.first_label, "decided"),
            (dispute.second_reviewer, dispute.second_label, "said (second opinion)"),
        ):
            st.button(
                f"{display_label(label)} — {who} {word}",
                key=f"{key}_{who}_{label}",
                icon=":material/gavel:",
                width="stretch",
                on_click=_settle,
                args=(dispute, _decision(label)),
            )
        labels = [label for label in cache.known_labels() if label not in (dispute.first_label, dispute.second_label)]
        st.selectbox("Neither: it is", labels, index=None, key=f"{key}_other", format_func=display_label)
        st.button("Save", key=f"{key}_save", on_click=_other, args=(dispute, f"{key}_other"))
        prediction_panel(photo.scores, bool(photo.uncertain), chart_key=f"{key}_chart")
