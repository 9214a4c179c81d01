"""The gate every run passes: served only where it may be, signed in, in a group, and the page's role.

dashboard.py calls `gate()` before routing; every page calls `require_page(act)` first, so a page
opened by its URL, or run on its own, is checked on the server as well; acts inside pages are
checked again at the moment they happen (ui.identity.acting_as).
"""

from __future__ import annotations

import logging

import streamlit as st

from foodclf import access
from foodclf.access import Identity
from foodclf.errors import SettingsError
from ui import identity

log = logging.getLogger("foodclf.dashboard")


def gate() -> Identity:
    """The person this run serves, or a page saying why not and the end of the run.

    Stops with: a refusal to serve beyond this machine without sign-in; a sign-in page; a
    sign-in that has expired; "no access" for a signed-in person in no mapped group.
    """
    configured = identity.signin_configured()
    try:
        access.check_dashboard_exposure(st.get_option("server.address"), configured)
    except SettingsError as err:
        log.error("%s", err)
        st.title("foodclf", anchor=False)
        st.error(str(err), icon=":material/lan:")
        st.stop()
    if configured and identity.signed_in_claims() is None:
        _sign_in_page()
    if identity.session_expired():
        _sign_in_page(expired=True)
    me = identity.current_identity()
    assert me is not None, "signed in and not expired, or no sign-in configured"
    if me.role is None:
        identity.record_denial(me, "dashboard", once=True)
        st.title("No access", anchor=False)
        st.info(access.NO_ACCESS, icon=":material/lock:")
        st.caption(f"Signed in as {me.name or 'an account without an email'}.")
        st.button("Sign out", key="signout_no_access", on_click=st.logout, icon=":material/logout:")
        st.stop()
    return me


def require_page(act: str) -> Identity:
    """Called first by each page: the person, or the refusal (recorded) and the end of the run."""
    me = gate()
    if not me.may(act):
        identity.record_denial(me, act)
        st.error(access.refusal(me, act), icon=":material/lock:")
        st.stop()
    return me


def _sign_in_page(expired: bool = False) -> None:
    st.title("foodclf", anchor=False)
    with st.container(border=True):
        if expired:
            st.markdown("**Your sign-in has expired.** Sign in again to go on; nothing you saved is lost.")
        else:
            st.markdown("**Sign in to use foodclf**, with your company account.")
        for number, provider in enumerate(_providers()):
            st.button(
                f"Sign in with {provider}" if provider else "Sign in",
                key=f"signin_{number}",
                type="primary",
                icon=":material/login:",
                on_click=st.login,
                args=(provider,) if provider else (),
            )
    st.stop()


def _providers() -> list:
    """The named providers ([auth.NAME] sections), or [None] for the one configured in [auth] itself."""
    try:
        section = st.secrets.get("auth", {}) if st.secrets.load_if_toml_exists() else {}
    except Exception:  # noqa: BLE001  (unreadable secrets: Streamlit's own login reports the problem)
        section = {}
    named = [name for name, value in section.items() if hasattr(value, "get") and value.get("client_id")]
    return named if named and not section.get("client_id") else [None]


def local_note(me: Identity) -> str:
    """The line shown while no sign-in is configured."""
    return (
        f"Local mode: no sign-in is configured, so you ({me.name}) are admin and the dashboard serves "
        "this machine only. See docs/auth.md to let colleagues sign in."
    )
