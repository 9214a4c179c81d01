"""API tokens as stored: a name, a role, the SHA-256 of the token (never the token), when created and last used."""

from __future__ import annotations

from datetime import datetime
from typing import Optional

from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session

from db.models import ApiToken, utcnow


def add_token(session: Session, *, name: str, role: str, token_sha256: str, created_by: str) -> ApiToken:
    """Store a new token's digest; the caller checks the name is free (the unique constraint backs it)."""
    row = ApiToken(name=name, role=role, token_sha256=token_sha256, created_by=created_by, created_at=utcnow())
    session.add(row)
    session.flush()
    return row


def token_by_name(session: Session, name: str) -> Optional[ApiToken]:
    return session.scalars(select(ApiToken).where(ApiToken.name == name)).first()


def token_by_digest(session: Session, token_sha256: str) -> Optional[ApiToken]:
    return session.scalars(select(ApiToken).where(ApiToken.token_sha256 == token_sha256)).first()


def list_tokens(session: Session) -> list[ApiToken]:
    """Every live token, by name."""
    return list(session.scalars(select(ApiToken).order_by(ApiToken.name)))


def any_tokens(session: Session) -> bool:
    """Whether any token is stored (then the API requires one)."""
    return bool(session.scalar(select(exists().where(ApiToken.id.is_not(None)))))


def delete_token(session: Session, name: str) -> bool:
    """Remove a token by name; True if there was one."""
    return session.execute(delete(ApiToken).where(ApiToken.name == name)).rowcount > 0


def mark_used(session: Session, token_id: int, when: datetime) -> None:
    session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=when))
