"""The dashboard's pages and its menu; dashboard.py routes through `route`, and so does a page opened first.

Until st.navigation has run once in a server process, Streamlit runs a page opened by its URL (a
bookmark, a reload after a restart) on its own, as in its older pages/ mode: no sidebar, no menu.
Each page starts with `ensure_routed()`, which then routes once and starts the run over through
dashboard.py, using only Streamlit's public API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from foodclf.access import Role, allowed

_routed = False  # st.navigation has run in this process

# (section, file, title, icon, the act the page needs: see foodclf.access.NEEDS)
PAGES = [
    ("Moderate", "pages/review_queue.py", "Review queue", ":material/inbox:", "review"),
    ("Moderate", "pages/second_opinions.py", "Second opinions", ":material/rate_review:", "review"),
    ("Moderate", "pages/classify.py", "Classify photos", ":material/add_photo_alternate:", "classify"),
    ("Moderate", "pages/browse.py", "Browse", ":material/photo_library:", "browse"),
    ("Insights", "pages/stats.py", "Stats", ":material/bar_chart:", "stats"),
    ("Insights", "pages/export.py", "Export", ":material/download:", "export"),
    ("Admin", "pages/models.py", "Models", ":material/model_training:", "models"),
    ("Admin", "pages/guidelines.py", "Guidelines", ":material/menu_book:", "guidelines"),
    ("Admin", "pages/adjudication.py", "Adjudication", ":material/gavel:", "adjudicate"),
    ("Admin", "pages/audit.py", "Audit log", ":material/policy:", "audit"),
]


def sections(role: Optional[Role] = Role.ADMIN) -> dict[str, list]:
    """The pages a role may open, by menu section; the first is the default (the queue, or Stats for viewers).

    pages/ is not auto-discovered: a page not listed is unreachable, and each page checks the role
    again itself.
    """
    mine = [entry for entry in PAGES if allowed(role, entry[4])] or PAGES[:1]
    found: dict[str, list] = {}
    for number, (section, path, title, icon, _) in enumerate(mine):
        found.setdefault(section, []).append(st.Page(path, title=title, icon=icon, default=number == 0))
    return found


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
