"""The foodclf dashboard: `streamlit run dashboard.py`. Routing and the shared sidebar only."""

import streamlit as st

from pages import _sidebar

st.set_page_config(page_title="foodclf", page_icon=":material/restaurant:", layout="wide")

# With st.navigation, pages/ is not auto-discovered: every page is listed here.
page = st.navigation(
    {
        "Moderate": [
            st.Page("pages/review.py", title="Review queue", icon=":material/inbox:", default=True),
            st.Page("pages/classify.py", title="Classify photos", icon=":material/add_photo_alternate:"),
            st.Page("pages/browse.py", title="Browse", icon=":material/photo_library:"),
        ],
        "Insights": [
            st.Page("pages/stats.py", title="Stats", icon=":material/bar_chart:"),
            st.Page("pages/export.py", title="Export", icon=":material/download:"),
            st.Page("pages/models.py", title="Models", icon=":material/model_training:"),
        ],
    }
)
with st.sidebar:
    _sidebar.draw()
page.run()
