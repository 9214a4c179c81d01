"""Who is using this session: the person signed in with Streamlit's sign-in (OpenID Connect), or, with no
sign-in configured, the local admin at this machine. Roles and their rules are in foodclf/access.py.
"""

from __future__ import annotations

import logging
from typing import Optional

import streamlit as st

from foodclf import access, audit
from foodclf.access import Identity
from ui import cache
from ui.messages import flash

log = logging.getLogger("foodclf.dashboard")

DENIALS = "access_denials_recorded"  # (who, what) refusals already in the audit trail this session


def signin_configured() -> bool:
    """Whether sign-in is set up: an [auth] section in secrets.toml (Streamlit then adds is_logged_in to st.user)."""
    if "is_logged_in" in st.user.to_dict():
        return True
    try:
        return st.secrets.load_if_toml_exists() and "auth" in st.secrets
    except Exception:  # noqa: BLE001  (an unreadable secrets file: Streamlit logs it; treat as not configured)
        return False


login_configured = signin_configured  # the older name


def signed_in_claims() -> Optional[dict]:
    """The signed-in person's ID-token claims, or None (signed out, or no sign-in configured)."""
    user = st.user.to_dict()
    return user if user.get("is_logged_in") else None


def session_expired() -> bool:
    """Whether the person is signed in, but longer ago than FOODCLF_SESSION_HOURS."""
    claims = signed_in_claims()
    return claims is not None and access.session_expired(claims, cache.settings())


def current_identity() -> Optional[Identity]:
    """This session's person: the local admin without sign-in; None if signed out or expired.

    A signed-in person in no mapped group has role None: they get no page at all.
    """
    settings = cache.settings()
    if not signin_configured():
        return access.local_identity(settings)
    claims = signed_in_claims()
    if claims is None or access.session_expired(claims, settings):
        return None
    return access.identity_from_claims(claims, settings)


def current_reviewer() -> Optional[str]:
    """The name recorded with decisions (email, else subject), when this person may decide; else None."""
    identity = current_identity()
    return identity.name if identity is not None and identity.may("decide") else None


def identity_prompt() -> Optional[str]:
    """The reviewer, or None when this person may not record decisions (pages check sign-in before this)."""
    return current_reviewer()


def acting_as(act: str) -> Optional[str]:
    """For callbacks and actions: the name to record the act under, or None after refusing it.

    Checked on the server at the moment of the act, whatever the page showed: a page drawn for
    an admin and clicked after a role change, or a crafted message, is refused and recorded.
    """
    identity = current_identity()
    if identity is None:
        flash("error", "Your sign-in has ended; sign in again to do this.")
        return None
    if not identity.may(act):
        flash("error", access.refusal(identity, act))
        record_denial(identity, act)
        return None
    return identity.name


def record_denial(identity: Identity, act: str, *, once: bool = False) -> None:
    """Put a refused page or act in the audit trail (with once=True, only the first time this session)."""
    key = (identity.name, act)
    recorded = st.session_state.setdefault(DENIALS, set())
    if once and key in recorded:
        return
    recorded.add(key)
    try:
        audit.record(
            cache.engine(),
            identity.name,
            "role_denied",
            act=act,
            role=identity.role.label if identity.role else None,
            groups=list(identity.groups),
        )
    except Exception:  # noqa: BLE001  (the refusal stands even if it cannot be recorded)
        log.exception("could not record a refused %s in the audit trail", act)
