"""The foodclf dashboard: `streamlit run dashboard.py`. The gate (sign-in, roles), routing and the shared sidebar."""

import streamlit as st

from ui import access, navigation, sidebar

st.set_page_config(page_title="foodclf", page_icon=":material/restaurant:", layout="wide")

me = access.gate()  # refuses an exposed server without sign-in, asks to sign in, or says "no access"
pages = navigation.sections(me.role)  # only the pages this role may open
page = navigation.route(pages)
with st.sidebar:
    navigation.menu(pages)
    sidebar.draw(me)
page.run()
