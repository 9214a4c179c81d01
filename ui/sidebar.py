"""The sidebar every page shares: the model in use and who is signed in (or the local-mode note)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from foodclf.access import Identity
from foodclf.engines import ENGINE_NAMES
from foodclf.errors import FoodclfError
from ui import access, cache, messages


def draw(me: Identity) -> None:
    """Model facts (or its loading state) and who is using the dashboard, with their role."""
    with st.container(border=True):
        if cache.model_is_loading():
            _model_loading()
        else:
            _model_facts()
    _identity(me)


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
        f"{facts['labels']} labels · {facts['device']} · {facts['precision']} · {ENGINE_NAMES[facts['engine']]}"
        + (" · zero-shot" if facts["zero_shot"] else "")
        + (" · not-food gate" if facts.get("not_food_gate") else "")
    )
    if facts.get("engine_note"):  # the runtime asked for could not run: say so rather than run slower silently
        st.caption(f":material/warning: {facts['engine_note']}; running on PyTorch.")
    if facts.get("note"):  # e.g. offline: the starter model stands in for the default; never silently
        st.info(facts["note"], icon=":material/cloud_off:" if facts["note"].startswith("offline") else None)


def _identity(me: Identity) -> None:
    if me.local:
        st.info(access.local_note(me), icon=":material/computer:")
        return
    st.markdown(f":material/person: Signed in as **{me.name}** · {me.role.label if me.role else 'no access'}")
    st.button("Sign out", key="logout", on_click=st.logout, type="tertiary", icon=":material/logout:")
