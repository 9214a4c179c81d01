"""API tokens kept in the database: created (shown once), listed, revoked, and checked on each request.

Only a token's SHA-256 is stored. Tokens are 32 random bytes, so a plain hash is enough (nothing to
guess a dictionary against); the stored digest is still compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional

from sqlalchemy import Engine

from db import tokens as store
from db.audit import record_event
from db.engine import session_scope
from db.models import TOKEN_ROLES, utcnow
from foodclf.errors import FoodclfError
from foodclf.labels import NAME_LENGTH, clean_reviewer_name

ROLES = TOKEN_ROLES  # tagger: classify and store photos; reader: read images and labels
PREFIX = "fct_"  # makes a leaked token easy to spot (and for secret scanners to find)
TOUCH_EVERY = timedelta(minutes=1)  # last_used is written at most this often per token


@dataclass(frozen=True)
class TokenInfo:
    """A stored token as listed: never the token itself."""

    name: str
    role: str
    created_at: datetime
    created_by: str
    last_used_at: Optional[datetime]


@dataclass(frozen=True)
class Caller:
    """Who is calling the API: a recorded name and what they may do."""

    name: str
    roles: frozenset[str]


def digest(token: str) -> str:
    """The SHA-256 hex digest stored for a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(engine: Engine, *, name: str, role: str, actor: str) -> str:
    """Store a new token for `name` with `role` and return it; this is the only time anyone sees it.

    Raises:
        FoodclfError: the name is empty, too long or taken, or the role is unknown.
    """
    error = None
    if len(name) > NAME_LENGTH:
        error = f"A token name may have at most {NAME_LENGTH} characters."
    elif not name or clean_reviewer_name(name) != name:
        error = "Give the token a name of visible characters, e.g. --name photo-uploader."
    elif role not in ROLES:
        error = f"A token's role is one of {', '.join(ROLES)}, not {role!r}."
    if error:
        raise FoodclfError(error)
    token = PREFIX + secrets.token_urlsafe(32)
    with session_scope(engine) as session:
        if store.token_by_name(session, name) is not None:
            raise FoodclfError(f"There is already a token named {name!r}; revoke it first or pick another name.")
        store.add_token(session, name=name, role=role, token_sha256=digest(token), created_by=actor)
        record_event(session, actor, "token_created", name=name, role=role)
    return token


def list_tokens(engine: Engine) -> list[TokenInfo]:
    """Every live token's name, role, creation and last use."""
    with session_scope(engine) as session:
        return [
            TokenInfo(row.name, row.role, row.created_at, row.created_by, row.last_used_at)
            for row in store.list_tokens(session)
        ]


def revoke_token(engine: Engine, name: str, *, actor: str) -> None:
    """Delete a token: the next request that presents it gets a 401.

    Raises:
        FoodclfError: there is no token of that name.
    """
    with session_scope(engine) as session:
        row = store.token_by_name(session, name)
        if row is None:
            raise FoodclfError(f"There is no token named {name!r}; `python -m foodclf tokens list` shows them.")
        role = row.role
        store.delete_token(session, name)
        record_event(session, actor, "token_revoked", name=name, role=role)


def stored_tokens_exist(engine: Engine) -> bool:
    """Whether any token is stored in the database."""
    with session_scope(engine) as session:
        return store.any_tokens(session)


def check_token(engine: Engine, presented: str) -> Optional[Caller]:
    """The caller a stored token belongs to ("token:<name>", its role), or None; notes when it was used."""
    wanted = digest(presented)
    with session_scope(engine) as session:
        row = store.token_by_digest(session, wanted)
        if row is None or not hmac.compare_digest(row.token_sha256, wanted):
            return None
        now = utcnow()
        if row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY:
            store.mark_used(session, row.id, now)
        return Caller(f"token:{row.name}", frozenset({row.role}))
