"""The foodclf dashboard: `streamlit run dashboard.py`. The gate (sign-in, roles), routing and the shared sidebar.

`streamlit run` first imports this file as a module to find `app`, the server (st.App) with the
export download route of ui/downloads.py; then it runs the file as `__main__` for every visit.
"""

import streamlit as st

from ui import access, downloads, navigation, sidebar

if __name__ != "__main__":  # imported by `streamlit run` to start the server: no page is drawn
    app = st.App(__file__, routes=downloads.routes())
else:
    st.set_page_config(page_title="foodclf", page_icon=":material/restaurant:", layout="wide")

    me = access.gate()  # refuses an exposed server without sign-in, asks to sign in, or says "no access"
    pages = navigation.sections(me.role)  # only the pages this role may open
    page = navigation.route(pages)
    with st.sidebar:
        navigation.menu(pages)
        sidebar.draw(me)
    page.run()
