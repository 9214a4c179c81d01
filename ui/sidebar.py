"""The sidebar every page shares: the model in use and who is reviewing."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from foodclf.errors import FoodclfError
from ui import cache, identity, messages


def draw() -> None:
    """Model facts (or its loading state) and the reviewer."""
    with st.container(border=True):
        if cache.model_is_loading():
            _model_loading()
        else:
            _model_facts()
    _identity()


@st.fragment(run_every=1.0)
def _model_loading() -> None:
    # Polls once a second while the first load runs, then redraws the whole page once.
    if not cache.model_is_loading():
        st.rerun(scope="app")
    st.markdown(":material/hourglass_top: **Loading the model…**")
    st.caption("Pages that need it will wait; the others work already.")


def _model_facts() -> None:
    try:
        facts = cache.classifier(wait=False).describe()
    except FoodclfError as err:
        st.markdown(":material/error: **No model**")
        st.caption(str(err))
        st.button("Try again", key="model_retry", on_click=cache.reload_model, type="tertiary")
        return
    except Exception as err:  # noqa: BLE001  (the sidebar must never take the page down)
        st.caption(messages.unexpected(err, "describing the model"))
        return
    name = Path(facts["id"]).name if facts["id"].startswith(("/", ".", "~")) else facts["id"]
    st.markdown(f":material/neurology: **{name}**", help=f"Model: {facts['id']}")
    st.caption(
        f"Fingerprint `{facts['fingerprint'][:12]}`  \n"
        f"{facts['labels']} labels · {facts['device']} · {facts['precision']}"
        + (" · zero-shot" if facts["zero_shot"] else "")
        + (" · not-food gate" if facts.get("not_food_gate") else "")
    )
    if facts.get("note"):  # e.g. offline: the starter model stands in for the default; never silently
        st.info(facts["note"], icon=":material/cloud_off:" if facts["note"].startswith("offline") else None)


def _identity() -> None:
    name = identity.current_reviewer()
    if identity.login_configured():
        if name:
            st.markdown(f":material/person: Signed in as **{name}**")
            st.button("Log out", key="logout", on_click=st.logout, type="tertiary")
        else:
            st.markdown(":material/person_off: Not logged in")
        return
    if name:
        st.markdown(f":material/person: Reviewing as **{name}**")
        st.button("Not you? Change name", key="change_name", on_click=identity.forget_name, type="tertiary")
    else:
        st.caption(":material/person_off: No reviewer yet: enter your name on the page to save decisions.")
