"""Guidelines per category: stored, read, and the photos that may illustrate one."""

from __future__ import annotations

from typing import Optional

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Guideline, ImageRow, utcnow

EXAMPLES = 3  # example photos per guideline, at most
DESCRIPTION_LENGTH = 1000  # characters: a guideline is read beside the buttons, not studied


def guideline(session: Session, label: str) -> Optional[Guideline]:
    return session.get(Guideline, label)


def example_paths(session: Session, ids: list[int]) -> list[tuple[int, str]]:
    """(image id, stored path) of these photos, in the given order (ones gone since are left out)."""
    found = dict(session.execute(select(ImageRow.id, ImageRow.stored_path).where(ImageRow.id.in_(ids))).all())
    return [(i, found[i]) for i in ids if i in found]


def candidates(session: Session, label: str, limit: int = 24) -> list[tuple[int, str]]:
    """(image id, stored path) of photos currently decided as this label, newest decision first."""
    stmt = (
        select(ImageRow.id, ImageRow.stored_path)
        .where(ImageRow.current_label == label)
        .order_by(ImageRow.reviewed_at.desc(), ImageRow.id.desc())
        .limit(limit)
    )
    return [tuple(row) for row in session.execute(stmt)]


def save(session: Session, label: str, description: str, examples: list[int], by: str) -> Guideline:
    """Create or replace a category's guideline (the caller has checked the inputs)."""
    row = session.get(Guideline, label) or Guideline(label=label)
    row.description, row.examples, row.updated_by, row.updated_at = description, list(examples), by, utcnow()
    session.add(row)
    session.flush()
    return row


def decided_as(session: Session, ids: list[int]) -> dict[int, Optional[str]]:
    """Each photo's current label (None: undecided); photos that do not exist are absent."""
    return dict(session.execute(select(ImageRow.id, ImageRow.current_label).where(ImageRow.id.in_(ids))).all())
