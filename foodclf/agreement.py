"""How far moderators agree: Cohen's kappa over the blind second opinions, overall, per moderator, per category.

Kappa (scikit-learn's cohen_kappa_score) is agreement beyond what chance would give with each side's
own mix of labels: 1 is full agreement, 0 no better than chance. It is undefined (None here) when
every label given was the same one, where raw agreement says all there is.
"""

from __future__ import annotations

from typing import Any, Optional

from sklearn.metrics import cohen_kappa_score
from sqlalchemy import Engine

from db import second_opinions
from db.engine import session_scope
from db.second_opinions import Pair


def kappa(a: list[str], b: list[str]) -> Optional[float]:
    """Cohen's kappa of two raters' labels for the same items; None when it is undefined (one label in all)."""
    if not a or len(set(a) | set(b)) < 2:
        return None
    return float(cohen_kappa_score(a, b))


def agreement_report(engine: Engine, *, since=None, until=None) -> dict[str, Any]:
    """{"overall", "moderators", "categories"} over the second opinions given in the range (until inclusive)."""
    with session_scope(engine) as session:
        pairs = second_opinions.pairs(session, since=since, until=until)
    return dict(overall=overall(pairs), moderators=per_moderator(pairs), categories=per_category(pairs))


def overall(pairs: list[Pair]) -> dict[str, Any]:
    first, second = [p.first_label for p in pairs], [p.second_label for p in pairs]
    agreed = sum(a == b for a, b in zip(first, second))
    return dict(
        pairs=len(pairs), agreed=agreed, agreement=agreed / len(pairs) if pairs else None, kappa=kappa(first, second)
    )


def per_moderator(pairs: list[Pair]) -> list[dict[str, Any]]:
    """Per moderator, over the photos they judged first or second: their labels against the other moderator's."""
    mine: dict[str, tuple[list[str], list[str]]] = {}
    for p in pairs:
        for me, my_label, their_label in (
            (p.first_reviewer, p.first_label, p.second_label),
            (p.second_reviewer, p.second_label, p.first_label),
        ):
            ours, theirs = mine.setdefault(me, ([], []))
            ours.append(my_label)
            theirs.append(their_label)
    rows = []
    for name, (ours, theirs) in mine.items():
        agreed = sum(a == b for a, b in zip(ours, theirs))
        rows.append(
            dict(
                moderator=name, pairs=len(ours), agreed=agreed, agreement=agreed / len(ours), kappa=kappa(ours, theirs)
            )
        )
    return sorted(rows, key=lambda r: (-r["pairs"], r["moderator"]))


def per_category(pairs: list[Pair]) -> list[dict[str, Any]]:
    """Per category: kappa of "is it this category?" between the two moderators, over every pair.

    pairs counts the photos where either said the category; agreed those where both did.
    """
    labels = sorted({p.first_label for p in pairs} | {p.second_label for p in pairs})
    rows = []
    for label in labels:
        first = [str(p.first_label == label) for p in pairs]
        second = [str(p.second_label == label) for p in pairs]
        either = sum(p.first_label == label or p.second_label == label for p in pairs)
        both = sum(p.first_label == label and p.second_label == label for p in pairs)
        rows.append(dict(label=label, pairs=either, agreed=both, agreement=both / either, kappa=kappa(first, second)))
    return sorted(rows, key=lambda r: (-r["pairs"], r["label"]))
