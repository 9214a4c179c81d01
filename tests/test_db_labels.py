"""The categories in use: every latest predicted label and every current final label, once each."""

from __future__ import annotations

from db.reviews import undo_last_review
from db.stats import final_label_counts, known_labels, predicted_label_counts


def test_no_photos_no_labels(session):
    assert known_labels(session) == []


def test_predicted_and_decided_labels_once_each(session, make_image, make_review):
    pizza = make_image(session, label="pizza")
    make_image(session, label="pizza")
    sushi = make_image(session, label="sushi")
    make_image(session, label="Steak Frites")  # a model's raw label, as predicted
    make_review(session, pizza, action="corrected", label="Crème Brûlée")
    make_review(session, sushi, action="not_food")
    undone = make_image(session, label="ramen")
    make_review(session, undone, action="corrected", label="udon", reviewer="bob")
    undo_last_review(session, "bob")  # udon is no photo's label any more
    assert known_labels(session) == ["Steak Frites", "crème_brûlée", "not_food", "pizza", "ramen", "sushi"]
    # The same set the two statistics GROUP BYs give.
    grouped = {r["label"] for r in final_label_counts(session)}
    grouped |= {r["label"] for r in predicted_label_counts(session)}
    assert set(known_labels(session)) == grouped
