"""Moderators' decisions: validation, the two-moderator conflict, undo, append-only history."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db import reviews as reviews_module
from db.models import ImageRow, ReviewRow, utcnow
from db.queue import count_queue
from db.reviews import submit_review, undo_last_review
from foodclf.errors import FoodclfError, ReviewConflict, UnknownCategory
from foodclf.labels import clean_label


def reviews(session) -> list[tuple]:
    rows = session.scalars(select(ReviewRow).order_by(ReviewRow.id))
    return [(r.action, r.final_label, r.reviewer) for r in rows]


def state(session, image) -> tuple:
    session.refresh(image)
    return image.current_action, image.current_label


@pytest.mark.parametrize(
    "action, label, expected",
    [
        ("confirmed", None, ("confirmed", "pizza")),
        ("confirmed", "pizza", ("confirmed", "pizza")),
        ("corrected", "Apple Pie ", ("corrected", "apple_pie")),
        ("corrected", "  Crème   Brûlée", ("corrected", "crème_brûlée")),
        ("corrected", "new-dish", ("corrected", "new_dish")),  # a label the model does not know: allowed
        ("corrected", "Pizza", ("confirmed", "pizza")),  # "correcting" to the prediction confirms it
        ("corrected", "Not Food", ("not_food", "not_food")),
        ("confirmed", "Sushi", ("corrected", "sushi")),  # the moderator confirmed what they saw: an older prediction
        ("not_food", "ignored", ("not_food", "not_food")),
    ],
)
def test_decisions_are_stored_with_normalised_labels(session, make_image, action, label, expected):
    image = make_image(session, label="pizza")
    review = submit_review(
        session,
        image.id,
        action=action,
        final_label=label,
        reviewer=" alice ",
        expected_review_id=None,
        note="  looks right ",
    )
    assert (review.action, review.final_label, review.reviewer, review.note) == (*expected, "alice", "looks right")
    assert review.prediction_id == image.prediction_id
    assert (image.current_review_id, image.reviewed_at) == (review.id, review.created_at)
    assert state(session, image) == expected
    assert count_queue(session) == 0


def test_skipping_leaves_the_photo_in_the_queue(session, make_image):
    image = make_image(session)
    review = submit_review(session, image.id, action="skipped", reviewer="alice", expected_review_id=None)
    assert (review.action, review.final_label) == ("skipped", None)
    assert image.current_review_id is None
    assert count_queue(session) == 1


@pytest.mark.parametrize(
    "label, message",
    [
        (None, "Pick or type a category for this photo."),
        ("   ", "Pick or type a category for this photo."),
        ("../../etc/passwd", "Use only letters, digits, spaces and hyphens in a category name (not './')."),
        ("fish/chips", "(not '/')"),
        ("mac & cheese", "(not '&')"),
        ("pizza\x00", "(not '\\x00')"),
        ("<script>", "(not '<>')"),
        ("x" * 101, "A category name can be at most 100 characters."),
        ("é" * 101, "A category name can be at most 100 characters."),  # counted in characters, not bytes
        ("pizza\u200b", "(not '\\u200b')"),  # zero-width space pasted from a web page
        ("\u202epizza", "(not '\\u202e')"),  # right-to-left override: would display reversed
        ("pi\u00adzza", "(not '\\xad')"),  # soft hyphen: invisible
        ("🍕", "(not '🍕')"),
    ],
)
def test_unusable_labels_are_refused_and_nothing_is_written(session, make_image, label, message):
    image = make_image(session)
    with pytest.raises(UnknownCategory) as caught:
        submit_review(
            session, image.id, action="corrected", final_label=label, reviewer="alice", expected_review_id=None
        )
    assert message in str(caught.value)
    assert reviews(session) == []
    assert image.current_review_id is None


def test_misuse_is_a_value_error_naming_the_argument(session, make_image):
    image = make_image(session)
    with pytest.raises(ValueError, match="action: expected one of confirmed, corrected, not_food, skipped"):
        submit_review(session, image.id, action="undone", reviewer="alice", expected_review_id=None)
    with pytest.raises(ValueError, match="prediction_id: 999 is not a prediction of image"):
        submit_review(session, image.id, action="confirmed", reviewer="a", expected_review_id=None, prediction_id=999)
    with pytest.raises(FoodclfError, match="Enter your name"):
        submit_review(session, image.id, action="confirmed", reviewer="  ", expected_review_id=None)
    with pytest.raises(FoodclfError, match="no longer in the database"):
        submit_review(session, image.id + 99, action="confirmed", reviewer="a", expected_review_id=None)
    assert reviews(session) == []
    assert state(session, image) == (None, None)


@pytest.mark.parametrize(
    "label, stored",
    [
        ("x" * 100, "x" * 100),  # exactly the limit
        ("é" * 100, "é" * 100),
        ("\u00a0Pizza\u00a0", "pizza"),  # no-break spaces count as spaces
        ("tab\there", "tab_here"),
        ("two\nlines", "two_lines"),
        ("Ramen-Ya  2", "ramen_ya_2"),
    ],
)
def test_odd_but_usable_labels_are_normalised(session, make_image, label, stored):
    image = make_image(session, label="pizza")
    review = submit_review(
        session, image.id, action="corrected", final_label=label, reviewer="alice", expected_review_id=None
    )
    assert review.final_label == stored
    assert state(session, image) == ("confirmed" if stored == "pizza" else "corrected", stored)


BLANK_NAMES = [None, "", "   ", "\t\n", "\u00a0", "\u3000"]


@pytest.mark.parametrize("reviewer", BLANK_NAMES)
@pytest.mark.parametrize("action", ["confirmed", "corrected", "not_food", "skipped"])
def test_a_blank_reviewer_is_refused_and_nothing_is_written(session, make_image, reviewer, action):
    image = make_image(session)
    with pytest.raises(FoodclfError, match="^Enter your name before reviewing, so each decision can be traced.$"):
        submit_review(session, image.id, action=action, final_label="soup", reviewer=reviewer, expected_review_id=None)
    assert reviews(session) == []
    assert state(session, image) == (None, None)


@pytest.mark.parametrize("reviewer", BLANK_NAMES)
def test_undo_by_a_blank_reviewer_is_refused_and_nothing_is_written(session, make_image, make_review, reviewer):
    image = make_image(session)
    make_review(session, image, action="confirmed", reviewer="alice")
    with pytest.raises(FoodclfError, match="^Enter your name before reviewing"):
        undo_last_review(session, reviewer)
    assert reviews(session) == [("confirmed", "pizza", "alice")]
    assert state(session, image) == ("confirmed", "pizza")


def test_a_very_long_reviewer_name_is_cut_to_the_column_length(session, make_image):
    image = make_image(session)
    review = submit_review(session, image.id, action="confirmed", reviewer="  a  " + "b" * 300, expected_review_id=None)
    assert review.reviewer == ("a " + "b" * 300)[:100]


@pytest.mark.parametrize("action", ["confirmed", "corrected", "not_food", "skipped"])
@pytest.mark.parametrize("missing", [0, -1, 10**9])
def test_a_review_of_a_photo_that_does_not_exist_is_refused(session, make_image, make_review, action, missing):
    image = make_image(session)
    make_review(session, image, action="confirmed", reviewer="alice")
    with pytest.raises(FoodclfError, match="^This photo is no longer in the database; reload the queue.$"):
        submit_review(
            session,
            missing,
            action=action,
            final_label="soup",
            reviewer="bob",
            expected_review_id=image.current_review_id,
        )
    assert reviews(session) == [("confirmed", "pizza", "alice")]
    assert state(session, image) == ("confirmed", "pizza")


def test_undo_with_nothing_to_undo_writes_nothing(session, make_image, make_review):
    assert undo_last_review(session, "alice") is None  # empty database
    image = make_image(session)
    make_review(session, image, action="corrected", label="soup", reviewer="bob")
    assert undo_last_review(session, "alice") is None  # only someone else's decisions
    assert undo_last_review(session, " alice ") is None
    assert reviews(session) == [("corrected", "soup", "bob")]
    assert state(session, image) == ("corrected", "soup")


def test_confirming_a_photo_without_prediction_asks_for_a_category(session):
    from db.records import record_image
    from factories import fake_loaded

    image = record_image(session, fake_loaded(b"bare"), source="upload", added_by="x", stored_path="b.jpg")
    with pytest.raises(UnknownCategory, match="no prediction to confirm"):
        submit_review(session, image.id, action="confirmed", reviewer="alice", expected_review_id=None)
    review = submit_review(
        session, image.id, action="corrected", final_label="soup", reviewer="alice", expected_review_id=None
    )
    assert (review.prediction_id, review.final_label) == (None, "soup")


def test_second_moderator_is_told_who_reviewed_and_nothing_is_overwritten(engine, make_image):
    with Session(engine) as setup, setup.begin():
        image_id = make_image(setup, label="pizza").id
    alice, bob = Session(engine), Session(engine)
    # Both were shown the photo unreviewed.
    seen_by_alice = alice.get(ImageRow, image_id).current_review_id
    seen_by_bob = bob.get(ImageRow, image_id).current_review_id
    submit_review(alice, image_id, action="confirmed", reviewer="alice", expected_review_id=seen_by_alice)
    alice.commit()
    with pytest.raises(ReviewConflict) as caught:
        submit_review(
            bob, image_id, action="corrected", final_label="calzone", reviewer="bob", expected_review_id=seen_by_bob
        )
    bob.rollback()
    assert str(caught.value) == (
        "This photo was just reviewed by alice (confirmed as Pizza) just now; look again and decide."
    )
    # Bob looks again and re-judges knowingly.
    with Session(engine) as again, again.begin():
        current = again.get(ImageRow, image_id).current_review_id
        submit_review(
            again, image_id, action="corrected", final_label="calzone", reviewer="bob", expected_review_id=current
        )
    with Session(engine) as check:
        assert reviews(check) == [("confirmed", "pizza", "alice"), ("corrected", "calzone", "bob")]
        assert check.get(ImageRow, image_id).current_label == "calzone"
    alice.close()
    bob.close()


def test_conflict_message_says_how_long_ago(session, make_image, make_review):
    image = make_image(session)
    make_review(session, image, action="not_food", reviewer="carol", at=utcnow() - timedelta(minutes=3, seconds=5))
    with pytest.raises(ReviewConflict, match=r"reviewed by carol \(marked not food\) 3 minutes ago"):
        submit_review(session, image.id, action="confirmed", reviewer="dan", expected_review_id=None)


@pytest.mark.parametrize("attempt", range(5))
def test_simultaneous_submits_exactly_one_wins(engine, make_image, attempt):
    with Session(engine) as setup, setup.begin():
        image_id = make_image(setup).id
    start = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def moderator(name: str) -> None:
        with Session(engine) as session:
            start.wait()
            try:
                with session.begin():
                    submit_review(
                        session,
                        image_id,
                        action="corrected",
                        final_label=f"dish_{name}",
                        reviewer=name,
                        expected_review_id=None,
                    )
                outcomes[name] = "saved"
            except ReviewConflict as err:
                outcomes[name] = err

    threads = [threading.Thread(target=moderator, args=(name,)) for name in ("alice", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    winners = [name for name, outcome in outcomes.items() if outcome == "saved"]
    losers = [outcome for outcome in outcomes.values() if isinstance(outcome, ReviewConflict)]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    assert f"reviewed by {winners[0]} (corrected to Dish {winners[0]})" in str(losers[0])
    with Session(engine) as check:
        assert [r[2] for r in reviews(check)] == winners
        assert check.get(ImageRow, image_id).current_label == f"dish_{winners[0]}"


def test_undo_restores_the_previous_decision_and_keeps_history(session, make_image, make_review):
    image = make_image(session, label="pizza")
    make_review(session, image, action="confirmed", reviewer="alice")
    make_review(session, image, action="corrected", label="flatbread", reviewer="bob")
    undo = undo_last_review(session, "bob")
    assert (undo.action, undo.final_label, undo.reviewer) == ("undone", None, "bob")
    assert state(session, image) == ("confirmed", "pizza")
    assert reviews(session) == [
        ("confirmed", "pizza", "alice"),
        ("corrected", "flatbread", "bob"),
        ("undone", None, "bob"),
    ]


def test_undo_walks_back_and_returns_the_photo_to_the_queue(session, make_image, make_review):
    image = make_image(session, label="pizza")
    make_review(session, image, action="confirmed", reviewer="alice")
    make_review(session, image, action="corrected", label="calzone", reviewer="alice")
    undo_last_review(session, "alice")
    assert state(session, image) == ("confirmed", "pizza")
    undo_last_review(session, "alice")
    assert state(session, image) == (None, None)
    assert image.current_review_id is None and image.reviewed_at is None
    assert count_queue(session) == 1
    assert undo_last_review(session, "alice") is None  # nothing left to undo
    assert session.scalar(select(func.count()).select_from(ReviewRow)) == 4


def test_undoing_a_skip_changes_nothing_but_the_log(session, make_image, make_review):
    image = make_image(session)
    make_review(session, image, action="confirmed", reviewer="alice")
    other = make_image(session)
    make_review(session, other, action="skipped", reviewer="alice")
    undo = undo_last_review(session, "alice")
    assert undo.image_id == other.id
    assert state(session, image) == ("confirmed", "pizza")
    undo_last_review(session, "alice")  # then the confirmation before it
    assert state(session, image) == (None, None)


def test_undo_skips_a_decision_someone_else_replaced_instead_of_getting_stuck(session, make_image, make_review):
    """Alice's latest decision was replaced by Bob's: undo takes back her latest one still in effect."""
    lunch, dinner = make_image(session), make_image(session, label="steak")
    make_review(session, lunch, action="confirmed", reviewer="alice")
    make_review(session, dinner, action="confirmed", reviewer="alice")
    make_review(session, dinner, action="corrected", label="calzone", reviewer="bob")
    undo = undo_last_review(session, "alice")
    assert undo is not None and undo.image_id == lunch.id
    assert state(session, lunch) == (None, None)
    assert state(session, dinner) == ("corrected", "calzone")  # Bob's decision stands
    assert undo_last_review(session, "alice") is None  # nothing of hers is in effect any more
    assert [r[0] for r in reviews(session)] == ["confirmed", "confirmed", "corrected", "undone"]


def test_undo_when_someone_else_replaced_every_decision_writes_nothing(session, make_image, make_review):
    image = make_image(session)
    make_review(session, image, action="confirmed", reviewer="alice")
    make_review(session, image, action="corrected", label="calzone", reviewer="bob")
    assert undo_last_review(session, "alice") is None
    assert state(session, image) == ("corrected", "calzone")
    assert [r[0] for r in reviews(session)] == ["confirmed", "corrected"]


def test_undo_of_a_decision_replaced_while_undoing_is_refused(session, engine, make_image, make_review):
    """The race: Bob decides between Alice's undo choosing its target and claiming the photo."""
    image = make_image(session)
    make_review(session, image, action="confirmed", reviewer="alice")
    session.commit()
    real_claim = reviews_module._claim

    def bob_first(*args, **kwargs):
        reviews_module._claim = real_claim  # Bob's own decision claims the photo as usual
        with Session(engine) as other, other.begin():
            other_image = other.get(ImageRow, image.id)
            submit_review(
                other,
                image.id,
                action="corrected",
                final_label="calzone",
                reviewer="bob",
                expected_review_id=other_image.current_review_id,
            )
        return real_claim(*args, **kwargs)

    reviews_module._claim = bob_first
    try:
        with pytest.raises(
            ReviewConflict,
            match="reviewed by bob .* their decision stands, so there is nothing of yours to undo on this photo.",
        ):
            undo_last_review(session, "alice")
    finally:
        reviews_module._claim = real_claim
    session.rollback()
    assert state(session, image) == ("corrected", "calzone")


def test_a_review_is_undone_at_most_once(session, make_image, make_review):
    image = make_image(session)
    review = make_review(session, image, action="skipped", reviewer="alice")
    session.add(ReviewRow(image_id=image.id, action="undone", reviewer="alice", undoes_review_id=review.id))
    session.flush()
    session.add(ReviewRow(image_id=image.id, action="undone", reviewer="alice", undoes_review_id=review.id))
    with pytest.raises(IntegrityError):
        session.flush()


def test_a_decomposed_accent_is_the_same_label(session, make_image):
    image = make_image(session)
    review = submit_review(
        session,
        image.id,
        action="corrected",
        final_label="Cre\u0300me Bru\u0302le\u0301e",
        reviewer="alice",
        expected_review_id=None,
    )
    assert review.final_label == "crème_brûlée"


def test_an_invisible_reviewer_name_is_refused(session, make_image):
    image = make_image(session)
    with pytest.raises(FoodclfError, match="Enter your name"):
        submit_review(session, image.id, action="confirmed", reviewer="\u200b", expected_review_id=None)


@pytest.mark.parametrize("typed", ["ｐｉｚｚａ", "PIZZA", " Pizza "])
def test_fullwidth_and_case_variants_are_the_same_label(typed):
    assert clean_label(typed) == "pizza"


@pytest.mark.parametrize("typed", ["_", "___", " _ "])
def test_a_label_of_only_underscores_is_refused(typed):
    with pytest.raises(UnknownCategory, match="Pick or type a category"):
        clean_label(typed)


# --- the same decision twice (a double click, a key pressed twice) ---


@pytest.mark.parametrize(
    ("action", "label", "stored"),
    [
        ("confirmed", None, ("confirmed", "pizza")),
        ("confirmed", "Pizza", ("confirmed", "pizza")),
        ("corrected", "Bao buns", ("corrected", "bao_buns")),
        ("corrected", "pizza", ("confirmed", "pizza")),  # a correction to the model's label is a confirmation
        ("not_food", None, ("not_food", "not_food")),
        ("skipped", None, ("skipped", None)),
    ],
)
def test_the_same_decision_again_by_the_same_person_is_stored_once(session, make_image, action, label, stored):
    image = make_image(session, label="pizza")
    first = submit_review(
        session, image.id, action=action, final_label=label, reviewer="alice", expected_review_id=None
    )
    # The second click comes from the view drawn before the first was saved (expected: unreviewed).
    again = submit_review(
        session, image.id, action=action, final_label=label, reviewer=" alice ", expected_review_id=None
    )
    assert again.id == first.id and again.repeated
    assert reviews(session) == [(*stored, "alice")]
    assert image.current_review_id == (None if action == "skipped" else first.id)


def test_a_repeat_from_the_current_view_is_stored_once_too(session, make_image):
    image = make_image(session, label="pizza")
    first = submit_review(session, image.id, action="confirmed", reviewer="alice", expected_review_id=None)
    again = submit_review(session, image.id, action="confirmed", reviewer="alice", expected_review_id=first.id)
    assert again.id == first.id
    assert len(reviews(session)) == 1


def test_a_different_decision_or_person_is_not_a_repeat(session, make_image):
    image = make_image(session, label="pizza")
    first = submit_review(session, image.id, action="confirmed", reviewer="alice", expected_review_id=None)
    # Alice changes her mind from a stale view: that is a conflict to look at, not a repeat.
    with pytest.raises(ReviewConflict, match="alice"):
        submit_review(session, image.id, action="not_food", reviewer="alice", expected_review_id=None)
    # Bob, from the same stale view: a conflict naming Alice.
    with pytest.raises(ReviewConflict, match="reviewed by alice"):
        submit_review(session, image.id, action="confirmed", reviewer="bob", expected_review_id=None)
    # Bob agreeing knowingly is his own decision, stored.
    bob = submit_review(session, image.id, action="confirmed", reviewer="bob", expected_review_id=first.id)
    assert not bob.repeated and bob.id != first.id
    assert [r[2] for r in reviews(session)] == ["alice", "bob"]


def test_after_an_undo_the_same_decision_is_stored_again(session, make_image):
    image = make_image(session, label="pizza")
    submit_review(session, image.id, action="confirmed", reviewer="alice", expected_review_id=None)
    undo_last_review(session, "alice")
    again = submit_review(session, image.id, action="confirmed", reviewer="alice", expected_review_id=None)
    assert not again.repeated
    assert [r[0] for r in reviews(session)] == ["confirmed", "undone", "confirmed"]
    assert image.current_review_id == again.id


def test_a_skip_after_someone_else_reviewed_is_stored(session, make_image):
    image = make_image(session, label="pizza")
    submit_review(session, image.id, action="skipped", reviewer="alice", expected_review_id=None)
    submit_review(session, image.id, action="skipped", reviewer="bob", expected_review_id=None)
    later = submit_review(session, image.id, action="skipped", reviewer="alice", expected_review_id=None)
    assert not later.repeated
    assert [r[2] for r in reviews(session)] == ["alice", "bob", "alice"]
