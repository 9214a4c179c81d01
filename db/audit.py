"""The audit trail: append a sensitive act, read them back filtered. There is no update and no delete."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Optional, Union

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import AUDIT_ACTIONS, AuditEvent, as_utc, utcnow
from foodclf.labels import NAME_LENGTH, clean_reviewer_name

When = Union[date, datetime, None]


def record_event(session: Session, actor: str, action: str, /, **detail: Any) -> AuditEvent:
    """Append one act to the trail, in the caller's transaction (so the act and its record commit together).

    Args:
        actor: who did it (a person's email or subject, "token:<name>", a CLI user).
        action: one of AUDIT_ACTIONS.
        detail: its particulars, as JSON-able plain values; never a secret.
    """
    if action not in AUDIT_ACTIONS:
        raise ValueError(f"action: expected one of {', '.join(AUDIT_ACTIONS)}, not {action!r}")
    event = AuditEvent(
        at=utcnow(), actor=clean_reviewer_name(actor)[:NAME_LENGTH] or "unknown", action=action, detail=detail
    )
    session.add(event)
    session.flush()
    return event


def list_events(
    session: Session,
    *,
    since: When = None,
    until: When = None,
    actor: Optional[str] = None,
    action: Optional[str] = None,
    limit: Optional[int] = None,
) -> list[AuditEvent]:
    """Events newest first; `since <= at < until` (a date `until` includes that whole day, UTC)."""
    query = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    if since is not None:
        query = query.where(AuditEvent.at >= as_utc(since, "since"))
    if until is not None:
        query = query.where(AuditEvent.at < as_utc(until, "until", end=True))
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if action:
        query = query.where(AuditEvent.action == action)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def actors(session: Session) -> list[str]:
    """Everyone who appears in the trail, alphabetically (for a filter)."""
    return list(session.scalars(select(AuditEvent.actor).distinct().order_by(AuditEvent.actor)))
