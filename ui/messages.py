"""Messages to the moderator: flashed after a callback, and the one line shown for an error we did not foresee."""

from __future__ import annotations

import logging

import streamlit as st

log = logging.getLogger("foodclf.dashboard")

FLASH = "flash"  # messages set by callbacks, shown once on the next run
GENERIC_ERROR = "Something went wrong on our side; the details are in the server log. Please try again."


def flash(kind: str, text: str) -> None:
    """Queue a message (success, notice, info, warning, error) for the next run: callbacks can't draw in place."""
    st.session_state.setdefault(FLASH, []).append((kind, text))


TOAST_ICONS = {"success": ":material/check_circle:", "notice": ":material/timer:"}  # kinds shown as a toast


def show_flash() -> None:
    """Show queued messages once: success and notices as a toast, the rest (info, warning, error) inline."""
    for kind, text in st.session_state.pop(FLASH, []):
        if kind in TOAST_ICONS:
            st.toast(text, icon=TOAST_ICONS[kind])
        else:
            getattr(st, kind)(text)


def unexpected(err: BaseException, doing: str) -> str:
    """Log the traceback of an error we did not foresee; return the line a moderator sees."""
    log.error("unexpected error while %s", doing, exc_info=err)
    return GENERIC_ERROR
