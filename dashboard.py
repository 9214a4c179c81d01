"""The foodclf dashboard: `streamlit run dashboard.py`. Routing and the shared sidebar only."""

import streamlit as st

from ui import navigation, sidebar

st.set_page_config(page_title="foodclf", page_icon=":material/restaurant:", layout="wide")

pages = navigation.sections()
page = navigation.route(pages)
with st.sidebar:
    navigation.menu(pages)
    sidebar.draw()
page.run()
