"""Guidelines: admins write, per category, how to tell it apart, with up to three example photos."""

from __future__ import annotations

import streamlit as st

from db.guidelines import DESCRIPTION_LENGTH, EXAMPLES
from foodclf import guidelines
from foodclf.errors import FoodclfError
from foodclf.labels import NOT_FOOD, display_label
from ui import access, cache, guards, messages, navigation
from ui.identity import acting_as

navigation.ensure_routed()  # a page opened first on a fresh server routes through dashboard.py
access.require_page("guidelines")  # admins only; else a refusal and a stop

COLUMNS = 6  # example candidates per row


def _save(label: str, candidates: list[tuple[int, str]]) -> None:
    """The Save button's callback: checked and stored, or the reason it was not."""
    admin = acting_as("guidelines")
    if admin is None:
        return
    ticked = [image_id for image_id, _ in candidates if st.session_state.get(f"g_ex_{label}_{image_id}")]
    try:
        guidelines.write_guideline(cache.engine(), label, st.session_state.get(f"g_text_{label}", ""), ticked, by=admin)
    except FoodclfError as err:
        messages.flash("error", str(err))
        return
    except Exception as err:  # noqa: BLE001
        messages.flash("error", messages.unexpected(err, "saving the guideline"))
        return
    cache.guideline.clear()
    messages.flash("success", f"Guideline for {display_label(label)} saved: moderators see it beside their buttons.")


st.title("Guidelines")
st.caption(
    "For each category, a few lines on how to tell it apart and up to three example photos. Moderators "
    "see them beside the decision buttons (for the model's answer) and under the category they correct to."
)
messages.show_flash()
engine = guards.engine_or_stop()
labels = [label for label in cache.known_labels() if label != NOT_FOOD]
label = st.selectbox(
    "Category", labels, index=None, key="g_label", format_func=display_label, placeholder="Choose a category…"
)
if label is None:
    st.stop()

try:
    current = guidelines.read_guideline(engine, label)
    candidates = guidelines.example_candidates(engine, label)
except Exception as err:  # noqa: BLE001
    st.error(messages.unexpected(err, "reading the guideline"))
    st.stop()
chosen = {i for i, _ in current.examples} if current else set()
# The examples in force first, even when newer decisions pushed them out of the candidates.
candidates = (current.examples if current else []) + [c for c in candidates if c[0] not in chosen]
if current:
    st.caption(f"Last saved by {current.updated_by} · {current.updated_at:%Y-%m-%d %H:%M} UTC")
st.text_area(
    "How to tell it apart",
    value=current.description if current else "",
    key=f"g_text_{label}",
    max_chars=DESCRIPTION_LENGTH,
    placeholder="e.g. Ramen: noodles in broth, often with egg and pork. Pho has flat rice noodles and herbs.",
)
st.markdown(f"**Example photos** (up to {EXAMPLES}, from photos decided as {display_label(label)})")
if not candidates:
    st.caption("No photo is decided as this category yet; the guideline can be saved without examples.")
for start in range(0, len(candidates), COLUMNS):
    cells = st.columns(COLUMNS)
    for cell, (image_id, stored_path) in zip(cells, candidates[start : start + COLUMNS]):
        thumb = cache.thumbnail(cache.settings().image_dir, stored_path)
        if thumb is not None:
            cell.image(thumb, width="stretch")
        cell.checkbox("Example", value=image_id in chosen, key=f"g_ex_{label}_{image_id}")
st.button("Save guideline", type="primary", icon=":material/save:", on_click=_save, args=(label, candidates))
