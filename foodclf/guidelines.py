"""Guidelines: per category, how moderators tell it apart, with up to three example photos.

Admins write them (the Guidelines page); moderators read them beside the decision buttons and
under the category they pick to correct to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Optional

from sqlalchemy import Engine

from db import guidelines
from db.engine import session_scope
from db.guidelines import DESCRIPTION_LENGTH, EXAMPLES
from foodclf.errors import FoodclfError
from foodclf.labels import display_label


@dataclass(frozen=True)
class Guide:
    """A category's guideline as shown: the text and its example photos' stored paths."""

    label: str
    description: str
    examples: list[tuple[int, str]]  # (image id, stored path)
    updated_by: str
    updated_at: datetime


def read_guideline(engine: Engine, label: str) -> Optional[Guide]:
    """The category's guideline, or None when nobody has written one."""
    with session_scope(engine) as session:
        row = guidelines.guideline(session, label)
        if row is None:
            return None
        return Guide(
            row.label, row.description, guidelines.example_paths(session, row.examples), row.updated_by, row.updated_at
        )


def example_candidates(engine: Engine, label: str, limit: int = 24) -> list[tuple[int, str]]:
    """Photos decided as this category, newest first: the ones an admin may pick as examples."""
    with session_scope(engine) as session:
        return guidelines.candidates(session, label, limit)


def write_guideline(engine: Engine, label: str, description: str, examples: list[int], *, by: str) -> Guide:
    """Save a category's guideline.

    Raises:
        FoodclfError: an empty or too long description, more than three examples, or an example
            that is not a photo decided as this category.
    """
    text = description.strip()
    if not text:
        raise FoodclfError("Write a short description of the category first.")
    if len(text) > DESCRIPTION_LENGTH:
        raise FoodclfError(f"Keep the description under {DESCRIPTION_LENGTH} characters (it has {len(text)}).")
    examples = list(dict.fromkeys(examples))
    if len(examples) > EXAMPLES:
        raise FoodclfError(f"Choose at most {EXAMPLES} example photos ({len(examples)} are ticked).")
    with session_scope(engine) as session:
        decided = guidelines.decided_as(session, examples)
        wrong = [i for i in examples if decided.get(i) != label]
        if wrong:
            raise FoodclfError(
                f"Example photos must be decided as {display_label(label)}; "
                f"{len(wrong)} of those chosen are not (any more). Choose again."
            )
        guidelines.save(session, label, text, examples, by)
    return read_guideline(engine, label)
