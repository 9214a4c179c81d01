"""A category's guideline where a moderator decides: its description and example photos, small."""

from __future__ import annotations

import streamlit as st

from foodclf.labels import display_label
from ui import cache


def guideline_note(label: str | None) -> None:
    """The guideline of `label` in a quiet box (nothing when there is none, or no label)."""
    if not label:
        return
    try:
        guide = cache.guideline(cache.settings().database_url, label)
    except Exception:  # noqa: BLE001  (a guideline helps; its absence must never stop a decision)
        return
    if guide is None:
        return
    with st.container(border=True):
        st.markdown(f":material/menu_book: **{display_label(label)}**: {guide.description}")
        if guide.examples:
            row = st.container(horizontal=True, gap="small")
            for _, stored_path in guide.examples:
                thumb = cache.thumbnail(cache.settings().image_dir, stored_path, 96)
                if thumb is not None:
                    row.image(thumb, width=72)
