"""The audit trail as people read it: filtered lists for the admin page and `python -m foodclf audit`.

Acts are recorded where they happen (export, model_registry, moderation, training, tokens), in the
same transaction as the act; the dashboard records refused pages and actions through `record`.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any, Optional, Union

from sqlalchemy import Engine

from db import audit
from db.engine import session_scope
from db.models import AUDIT_ACTIONS

ACTIONS = AUDIT_ACTIONS
When = Union[date, datetime, None]


def record(engine: Engine, actor: str, action: str, /, **detail: Any) -> None:
    """Append one act in its own transaction (for acts that write nothing else, e.g. a refused page)."""
    with session_scope(engine) as session:
        audit.record_event(session, actor, action, **detail)


def audit_events(
    engine: Engine,
    *,
    since: When = None,
    until: When = None,
    actor: Optional[str] = None,
    action: Optional[str] = None,
    limit: Optional[int] = None,
) -> list[dict[str, Any]]:
    """Events newest first, each a plain dict: id, at (aware UTC datetime), actor, action, detail."""
    with session_scope(engine) as session:
        rows = audit.list_events(session, since=since, until=until, actor=actor, action=action, limit=limit)
        return [{"id": e.id, "at": e.at, "actor": e.actor, "action": e.action, "detail": dict(e.detail)} for e in rows]


def audit_actors(engine: Engine) -> list[str]:
    """Everyone in the trail, for a filter."""
    with session_scope(engine) as session:
        return audit.actors(session)


def describe_detail(detail: dict[str, Any]) -> str:
    """An event's particulars on one line: key=value, values as JSON (lists and filters stay readable)."""
    return " ".join(f"{key}={json.dumps(value, ensure_ascii=False, default=str)}" for key, value in detail.items())


def event_line(event: dict[str, Any]) -> str:
    """One event as a line of text: time (UTC), actor, action, particulars."""
    return f"{event['at']:%Y-%m-%d %H:%M:%S}Z  {event['actor']}  {event['action']}  {describe_detail(event['detail'])}"


def event_json(event: dict[str, Any]) -> str:
    """One event as a JSON object on one line (time as ISO 8601 UTC)."""
    return json.dumps({**event, "at": event["at"].isoformat()}, ensure_ascii=False, default=str)
