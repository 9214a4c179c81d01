"""Date range pickers as (since, until) filters."""

from __future__ import annotations

from datetime import date
from typing import Optional


def date_range(value) -> tuple[Optional[date], Optional[date]]:
    """A date_input range as (since, until), until inclusive; while only the first day is picked, from it on."""
    if isinstance(value, date):
        return value, value
    picked = tuple(value or ())
    if len(picked) == 2:
        return picked[0], picked[1]
    return (picked[0], None) if picked else (None, None)
