"""Queue strategies: smallest margin, highest entropy, and decided photos the newest model disagrees with."""

from __future__ import annotations

import pytest

from db.queue import QueueFilters, count_queue, review_queue
from db.records import record_image, record_prediction
from db.reviews import submit_review
from factories import fake_loaded
from foodclf.classifier import ClassificationResult

LABELS = ("pizza", "steak", "sushi", "ramen")


def result(scores, fingerprint="a" * 64):
    """A result with every score given, in LABELS order."""
    order = sorted(range(len(LABELS)), key=lambda i: -scores[i])
    class_scores = [{"label": LABELS[i], "score": scores[i]} for i in order]
    return ClassificationResult(
        class_scores=class_scores,
        highest_probability_class=class_scores[0]["label"],
        uncertain=False,
        model_id="m",
        fingerprint=fingerprint,
        all_scores=tuple(scores),
        score_labels=LABELS,
    )


def add(session, name, scores, fingerprint="a" * 64):
    loaded = fake_loaded(name.encode(), file_name=name)
    image = record_image(session, loaded, source="folder", added_by="t", stored_path=f"{loaded.content_id}.jpg")
    record_prediction(session, image, result(scores, fingerprint))
    return image


@pytest.fixture
def photos(session):
    made = {
        "sure": add(session, "sure", [0.97, 0.01, 0.01, 0.01]),  # margin 0.96, low entropy
        "torn": add(session, "torn", [0.48, 0.46, 0.03, 0.03]),  # margin 0.02
        "spread": add(session, "spread", [0.28, 0.25, 0.24, 0.23]),  # margin 0.03, highest entropy
        "unsure": add(session, "unsure", [0.40, 0.20, 0.20, 0.20]),  # margin 0.20
    }
    session.flush()
    return made


def names(page):
    return [item.file_name for item in page.items]


def test_smallest_margin_and_highest_entropy_orders(session, photos):
    assert names(review_queue(session, order="smallest_margin")) == ["torn", "spread", "unsure", "sure"]
    assert names(review_queue(session, order="highest_entropy")) == ["spread", "unsure", "torn", "sure"]
    assert names(review_queue(session)) == ["spread", "unsure", "torn", "sure"]  # least confident (default)


@pytest.mark.parametrize("order", ["smallest_margin", "highest_entropy"])
def test_keyset_pages_walk_every_photo_once(session, photos, order):
    for n in range(7):  # ties on the score: the id breaks them across pages
        add(session, f"tie-{n}", [0.5, 0.3, 0.1, 0.1])
    whole = names(review_queue(session, order=order, limit=50))
    walked, after = [], None
    while True:
        page = review_queue(session, order=order, limit=3, after=after)
        walked += names(page)
        after = page.next_after
        if after is None:
            break
    assert walked == whole and len(walked) == 11 == count_queue(session, order=order)
    with pytest.raises(ValueError, match="cursor"):
        review_queue(
            session,
            order="highest_entropy" if order == "smallest_margin" else "smallest_margin",
            after=review_queue(session, order=order, limit=3).next_after,
        )


def test_decided_photos_the_newest_model_disagrees_with(session, photos):
    for name in ("sure", "torn", "spread"):
        image = photos[name]
        submit_review(
            session,
            image.id,
            action="corrected",
            final_label="pizza" if name != "torn" else "steak",
            reviewer="ana",
            expected_review_id=None,
        )
    assert names(review_queue(session, order="disagrees")) == []  # decided against the prediction they saw
    # A newer model (e.g. after reclassify) says sushi for "sure" and pizza for "spread".
    record_prediction(session, photos["sure"], result([0.1, 0.1, 0.7, 0.1], fingerprint="b" * 64))
    record_prediction(session, photos["spread"], result([0.9, 0.05, 0.03, 0.02], fingerprint="b" * 64))
    assert names(review_queue(session, order="disagrees")) == ["sure"]
    assert count_queue(session, order="disagrees") == 1
    assert names(review_queue(session, QueueFilters(fingerprint="b" * 64), order="disagrees")) == ["sure"]
    # The moderator looks again and keeps pizza: the photo leaves that list.
    submit_review(
        session,
        photos["sure"].id,
        action="corrected",
        final_label="pizza",
        reviewer="ana",
        expected_review_id=photos["sure"].current_review_id,
    )
    assert names(review_queue(session, order="disagrees")) == []
