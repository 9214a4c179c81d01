"""Who is reviewing: the signed-in user (Streamlit login) or, without sign-in, a name typed once per session."""

from __future__ import annotations

from typing import Optional

import streamlit as st

from foodclf.labels import clean_reviewer_name

REVIEWER = "reviewer"  # the typed name, once per browser session
NAME_ENTRY = "reviewer_entry"  # the name field's widget key


def login_configured() -> bool:
    """Streamlit adds is_logged_in to st.user only when an [auth] section is configured."""
    return "is_logged_in" in st.user.to_dict()


def current_reviewer() -> Optional[str]:
    """The logged-in user's name (Streamlit login) or the name typed this session; None if neither."""
    if login_configured():
        user = st.user.to_dict()
        if not user.get("is_logged_in"):
            return None
        return clean_reviewer_name(str(user.get("name") or user.get("email") or "")) or None
    return st.session_state.get(REVIEWER) or None


def _accept_name() -> None:
    st.session_state[REVIEWER] = clean_reviewer_name(st.session_state.get(NAME_ENTRY, ""))


def forget_name() -> None:
    """Sign the typed name out (another moderator takes the desk)."""
    st.session_state.pop(REVIEWER, None)
    st.session_state[NAME_ENTRY] = ""


def identity_prompt() -> Optional[str]:
    """Ask who is reviewing when we don't know yet; returns the reviewer or None."""
    name = current_reviewer()
    if name:
        return name
    with st.container(border=True):
        if login_configured():
            st.markdown("**Log in to save decisions** — each one is recorded under your account.")
            st.button("Log in", key="login", icon=":material/login:", on_click=st.login)
        else:
            st.text_input(
                "Who is reviewing? Your name is saved with each decision.",
                key=NAME_ENTRY,
                placeholder="Your name, then Enter",
                on_change=_accept_name,
                max_chars=100,
            )
            st.caption("Asked once per browser session. Nothing is saved until you enter it.")
    return None
