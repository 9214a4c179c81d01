"""Who may do what: roles from the ID token's groups, what each role may do, and when the dashboard may serve.

Pure functions on plain values (claims as a dict, Settings): the dashboard's glue is ui/access.py,
the API's is foodclf/api/auth.py.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping, Optional

from foodclf.errors import AccessDenied, SettingsError
from foodclf.labels import clean_reviewer_name
from foodclf.settings import Settings, is_loopback, local_user


class Role(enum.IntEnum):
    """Dashboard roles, each including everything of the ones below it."""

    VIEWER = 1  # product staff: Stats, Browse (read only)
    MODERATOR = 2  # + review queue, Classify, decisions, undo
    ADMIN = 3  # + Export, Models (train, activate), audit log

    @property
    def label(self) -> str:
        return self.name.lower()


# What each act or page needs, at least. Pages and their callbacks both check these names.
NEEDS = {
    "stats": Role.VIEWER,
    "browse": Role.VIEWER,
    "review": Role.MODERATOR,  # the review queue
    "classify": Role.MODERATOR,  # upload and classify photos
    "decide": Role.MODERATOR,  # confirm, correct, not food, skip, undo
    "export": Role.ADMIN,
    "models": Role.ADMIN,  # the Models page
    "train": Role.ADMIN,
    "activate": Role.ADMIN,
    "audit": Role.ADMIN,
    "adjudicate": Role.ADMIN,  # settle disagreements between a decision and its second opinion
    "guidelines": Role.ADMIN,  # write the guideline of a category
}

# What a person reads in a refusal: "Your role (viewer) does not include <this>."
DOING = {
    "stats": "the statistics",
    "browse": "browsing photos",
    "review": "the review queue",
    "classify": "classifying photos",
    "decide": "recording decisions",
    "export": "exporting labels",
    "models": "the Models page",
    "train": "training models",
    "activate": "switching the model in use",
    "audit": "the audit log",
    "adjudicate": "settling disagreements between moderators",
    "guidelines": "writing guidelines",
}


@dataclass(frozen=True)
class Identity:
    """A person using the dashboard, and their role (None: signed in, but in no mapped group)."""

    name: str  # email, else subject: recorded with their decisions and in the audit log
    role: Optional[Role]
    local: bool = False  # no sign-in configured: the person at this machine, admin
    groups: tuple[str, ...] = ()

    def may(self, act: str) -> bool:
        """Whether this person's role includes an act (a key of NEEDS)."""
        return allowed(self.role, act)


def allowed(role: Optional[Role], act: str) -> bool:
    """Whether a role may do an act (a key of NEEDS); no role may do nothing."""
    if act not in NEEDS:
        raise ValueError(f"act: expected one of {', '.join(NEEDS)}, not {act!r}")
    return role is not None and role >= NEEDS[act]


def require(identity: Identity, act: str) -> None:
    """Raise AccessDenied unless the identity may do the act."""
    if not identity.may(act):
        raise AccessDenied(refusal(identity, act))


def refusal(identity: Identity, act: str) -> str:
    """The sentence a person reads when their role does not include an act."""
    if identity.role is None:
        return NO_ACCESS
    return (
        f"Your role ({identity.role.label}) does not include {DOING[act]}, which needs the "
        f"{NEEDS[act].label} role; ask an admin if you need it."
    )


NO_ACCESS = (
    "You have no access to foodclf yet: your account is in none of its groups. Ask an admin to add you "
    "to the viewer, moderator or admin group."
)


def claim_groups(claims: Mapping[str, Any], claim: str) -> tuple[str, ...]:
    """The groups in an ID-token claim: a list of names, or one string of names split by commas or spaces."""
    value = claims.get(claim)
    if isinstance(value, str):
        parts = value.replace(",", " ").split()
    elif isinstance(value, (list, tuple)):
        parts = [item for item in value if isinstance(item, str)]
    else:
        parts = []
    return tuple(part.strip() for part in parts if part.strip())


def role_for_groups(groups: tuple[str, ...], settings: Settings) -> Optional[Role]:
    """The highest role any of the groups maps to (FOODCLF_*_GROUPS), or None.

    Groups compare exactly (Keycloak's "/foodclf-admins" and "foodclf-admins" are different names).
    """
    have = set(groups)
    for role, mapped in (
        (Role.ADMIN, settings.admin_groups),
        (Role.MODERATOR, settings.moderator_groups),
        (Role.VIEWER, settings.viewer_groups),
    ):
        if have & set(mapped):
            return role
    return None


def identity_from_claims(claims: Mapping[str, Any], settings: Settings) -> Identity:
    """A signed-in person from their ID token's claims: named by email, else subject; role from the groups."""
    name = clean_reviewer_name(str(claims.get("email") or "")) or clean_reviewer_name(str(claims.get("sub") or ""))
    groups = claim_groups(claims, settings.role_claim)
    return Identity(name=name, role=role_for_groups(groups, settings) if name else None, groups=groups)


def local_identity(settings: Settings) -> Identity:
    """The person at this machine when no sign-in is configured: admin, under FOODCLF_REVIEWER or the login name."""
    return Identity(name=clean_reviewer_name(local_user(settings)) or "local", role=Role.ADMIN, local=True)


def session_expired(claims: Mapping[str, Any], settings: Settings, now: Optional[datetime] = None) -> bool:
    """Whether a sign-in is older than FOODCLF_SESSION_HOURS, counted from the ID token's `iat`.

    A token without a usable `iat` counts as expired: every OpenID Connect ID token carries one.
    """
    if settings.session_hours == 0:
        return False
    issued = claims.get("iat")
    if isinstance(issued, bool) or not isinstance(issued, (int, float)):
        return True
    now = now or datetime.now(timezone.utc)
    age = now.timestamp() - float(issued)
    return age > settings.session_hours * 3600 or age < -300  # issued in the future: a clock or a forgery


def check_dashboard_exposure(address: Optional[str], signin_configured: bool) -> None:
    """Refuse to serve the dashboard beyond this machine without sign-in.

    Args:
        address: Streamlit's server.address; empty or None means every interface.
        signin_configured: whether `.streamlit/secrets.toml` has an `[auth]` section.

    Raises:
        SettingsError: the address is not loopback and no sign-in is configured.
    """
    if signin_configured or (address and is_loopback(address)):
        return
    where = address or "every network interface"
    raise SettingsError(
        f"Refusing to serve the dashboard on {where} without sign-in: anyone who can reach this machine "
        "could see and change every photo and label. Configure sign-in in .streamlit/secrets.toml (an [auth] "
        "section for your OpenID Connect provider, see docs/auth.md), or serve this machine only with "
        "`make run` (--server.address 127.0.0.1)."
    )
