"""The dashboard's pages, one file each (routed by dashboard.py), and the helpers they share (_*.py)."""

from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner import get_script_run_ctx

# Streamlit takes a pages/ folder beside the entry script for an old-style multipage app until
# dashboard.py's st.navigation has run once in the process. So on a fresh server, a page opened
# by its URL (a bookmark, a reload after a restart) would run alone: no sidebar, and every file
# here listed as a page. Say now that dashboard.py routes, and run again through it.
if PagesManager.uses_pages_directory:
    PagesManager.uses_pages_directory = False
    if get_script_run_ctx(suppress_warning=True) is not None:
        import streamlit as st

        st.rerun()
