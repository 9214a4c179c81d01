"""The dashboard's pages and its menu; dashboard.py routes through `route`, and so does a page opened first.

Until st.navigation has run once in a server process, Streamlit runs a page opened by its URL (a
bookmark, a reload after a restart) on its own, as in its older pages/ mode: no sidebar, no menu.
Each page starts with `ensure_routed()`, which then routes once and starts the run over through
dashboard.py, using only Streamlit's public API.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

_routed = False  # st.navigation has run in this process


def sections() -> dict[str, list]:
    """Every page, by menu section (pages/ is not auto-discovered: a page not listed is unreachable)."""
    return {
        "Moderate": [
            st.Page("pages/review_queue.py", title="Review queue", icon=":material/inbox:", default=True),
            st.Page("pages/classify.py", title="Classify photos", icon=":material/add_photo_alternate:"),
            st.Page("pages/browse.py", title="Browse", icon=":material/photo_library:"),
        ],
        "Insights": [
            st.Page("pages/stats.py", title="Stats", icon=":material/bar_chart:"),
            st.Page("pages/export.py", title="Export", icon=":material/download:"),
            st.Page("pages/models.py", title="Models", icon=":material/model_training:"),
        ],
    }


def route(pages: dict[str, list]):
    """The page this run shows; Streamlit's own menu stays hidden (the sidebar draws ours)."""
    global _routed
    page = st.navigation(pages, position="hidden")
    _routed = True
    return page


def ensure_routed() -> None:
    """Called first by every page: on a fresh server, route once and rerun through dashboard.py."""
    if _routed:
        return
    ctx = get_script_run_ctx()
    # Only when the app is dashboard.py: AppTest runs a page file as the app itself, on purpose.
    if ctx is not None and Path(ctx.main_script_path).name == "dashboard.py":
        route(sections())
        st.rerun()


def menu(pages: dict[str, list]) -> None:
    """The page menu, drawn here rather than by Streamlit (see .streamlit/config.toml)."""
    for section, entries in pages.items():
        st.markdown(f":gray[{section}]")
        for page in entries:
            st.page_link(page)
