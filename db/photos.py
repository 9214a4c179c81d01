"""Walking every stored photo in id order, a page at a time: for distillation and reclassification."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import ImageRow


@dataclass(frozen=True)
class StoredPhoto:
    """Where a stored photo's bytes are, and its current decision (None: unreviewed)."""

    image_id: int
    content_id: str
    stored_path: str
    file_name: str
    current_label: Optional[str]


def stored_photos(session: Session, *, after_id: int = 0, limit: int = 500) -> list[StoredPhoto]:
    """Up to `limit` photos with an id above `after_id`, in id order (keyset: as fast at the end as at the start)."""
    if limit < 1:
        raise ValueError(f"limit: expected 1 or more, not {limit}")
    rows = session.execute(
        select(ImageRow.id, ImageRow.content_id, ImageRow.stored_path, ImageRow.file_name, ImageRow.current_label)
        .where(ImageRow.id > after_id)
        .order_by(ImageRow.id)
        .limit(limit)
    ).all()
    return [StoredPhoto(*row) for row in rows]


def iter_stored_photos(session: Session, *, after_id: int = 0, page: int = 500) -> Iterator[StoredPhoto]:
    """Every stored photo above `after_id`, in id order, read `page` rows at a time."""
    while True:
        batch = stored_photos(session, after_id=after_id, limit=page)
        yield from batch
        if len(batch) < page:
            return
        after_id = batch[-1].image_id


def page_starts(session: Session, *, page: int = 500) -> list[int]:
    """The `after_id` of every page of `page` photos in id order: [0, id of photo page, of photo 2*page, ...].

    One query (a window over the id index) instead of walking every page: how a bulk job splits the
    stored photos into pages that workers read with stored_photos(after_id=..., limit=page).
    """
    if page < 1:
        raise ValueError(f"page: expected 1 or more, not {page}")
    numbered = select(ImageRow.id, func.row_number().over(order_by=ImageRow.id).label("n")).subquery()
    ends = session.scalars(select(numbered.c.id).where(numbered.c.n % page == 0).order_by(numbered.c.id)).all()
    total = session.scalar(select(func.count()).select_from(ImageRow))
    starts = [0, *ends]
    return starts if total % page else starts[:-1]  # no empty page after the last full one
