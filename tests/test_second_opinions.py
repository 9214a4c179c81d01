"""Second opinions: a share of decisions goes back blind to someone else; agreement; adjudication."""

from __future__ import annotations

import random

import pytest
from sklearn.metrics import cohen_kappa_score
from sqlalchemy import func, select

from db.engine import session_scope
from db.models import ReviewRow
from db.second_opinions import Pair, sampled
from foodclf import moderation
from foodclf.agreement import agreement_report, kappa, per_category, per_moderator
from foodclf.errors import FoodclfError, OpinionTaken
from foodclf.moderation import Decision
from pages_support import run, seed_photo, sign_in

PIZZA = Decision("confirmed")


def _decide(dashboard, image_id, reviewer, decision=PIZZA, share=1.0):
    photo = moderation.refresh(dashboard.engine, image_id)
    return moderation.save_decision(dashboard.engine, photo, decision, reviewer=reviewer, second_opinion_share=share)


def _rows(dashboard) -> int:
    with session_scope(dashboard.engine) as session:
        return session.scalar(select(func.count()).select_from(ReviewRow))


def test_the_sampled_share_is_the_setting_and_the_same_each_time():
    draws = [sampled(f"{i:064x}", i, 0.1) for i in range(4000)]
    assert 0.085 < sum(draws) / len(draws) < 0.115
    assert draws == [sampled(f"{i:064x}", i, 0.1) for i in range(4000)]
    assert not any(sampled(f"{i:064x}", i, 0.0) for i in range(500))
    assert all(sampled(f"{i:064x}", i, 1.0) for i in range(500))


def test_never_to_the_first_moderator_and_blind_agreement_changes_no_label(dashboard):
    pizza = seed_photo(dashboard, "pizza", 0.8, (200, 40, 40))
    _decide(dashboard, pizza, "alice")
    engine = dashboard.engine
    assert moderation.next_second_opinion(engine, "alice") is None
    assert moderation.second_opinions_waiting(engine, "alice") == 0
    look = moderation.next_second_opinion(engine, "bob")
    assert look.photo.image_id == pizza and moderation.second_opinions_waiting(engine, "bob") == 1
    with pytest.raises(FoodclfError, match="first decision"):
        moderation.give_second_opinion(engine, look, PIZZA, reviewer="alice")
    rows = _rows(dashboard)
    assert moderation.give_second_opinion(engine, look, PIZZA, reviewer="bob") == "agreed"
    assert _rows(dashboard) == rows  # a second opinion is not a review: the label in force is alice's
    assert moderation.refresh(engine, pizza).reviewed_by == "alice"
    with pytest.raises(OpinionTaken):  # carol, on a page drawn before bob answered
        moderation.give_second_opinion(engine, look, PIZZA, reviewer="carol")
    assert moderation.next_second_opinion(engine, "carol") is None


def test_a_share_of_zero_asks_nothing_and_an_undone_decision_is_not_asked(dashboard):
    engine = dashboard.engine
    first = seed_photo(dashboard, "pizza", 0.8, (200, 40, 40))
    second = seed_photo(dashboard, "sushi", 0.8, (40, 200, 40))
    _decide(dashboard, first, "alice", share=0.0)
    assert moderation.next_second_opinion(engine, "bob") is None
    _decide(dashboard, second, "alice")
    moderation.undo_last(engine, "alice")  # the decision asked about is no longer in force
    assert moderation.next_second_opinion(engine, "bob") is None
    assert moderation.second_opinions_waiting(engine, "bob") == 0


def test_a_disagreement_waits_for_an_admin_whose_decision_becomes_the_label(dashboard):
    engine = dashboard.engine
    photo = seed_photo(dashboard, "pizza", 0.8, (200, 40, 40))
    _decide(dashboard, photo, "alice")
    look = moderation.next_second_opinion(engine, "bob")
    assert moderation.give_second_opinion(engine, look, Decision("corrected", "flatbread"), reviewer="bob") == (
        "disagreed"
    )
    disputes, total = moderation.disputes(engine)
    assert total == 1
    (dispute,) = disputes
    assert (dispute.first_reviewer, dispute.first_label, dispute.second_reviewer, dispute.second_label) == (
        "alice",
        "pizza",
        "bob",
        "flatbread",
    )
    saved = moderation.adjudicate(engine, dispute, Decision("corrected", "flatbread"), admin="lead")
    assert (saved.action, saved.label) == ("corrected", "flatbread")
    now = moderation.refresh(engine, photo)
    assert (now.final_label, now.reviewed_by) == ("flatbread", "lead")
    assert moderation.disputes(engine) == ([], 0)
    with pytest.raises(OpinionTaken):
        moderation.adjudicate(engine, dispute, PIZZA, admin="lead")
    # The pair still counts for agreement, as it was given.
    report = agreement_report(engine)
    assert report["overall"] == dict(pairs=1, agreed=0, agreement=0.0, kappa=0.0)


def _generated_pairs(n: int = 300) -> list[Pair]:
    rng = random.Random(7)
    people, labels = ["ana", "ben", "cy"], ["pizza", "sushi", "ramen", "not_food"]
    pairs = []
    for i in range(n):
        first, second = rng.sample(people, 2)
        truth = rng.choice(labels)
        a = truth if rng.random() < 0.8 else rng.choice(labels)
        b = truth if rng.random() < (0.9 if "cy" not in (first, second) else 0.5) else rng.choice(labels)
        pairs.append(Pair(i, first, a, second, b, "agreed" if a == b else "disagreed"))
    return pairs


def test_kappa_per_moderator_and_per_category_match_scikit_learn():
    pairs = _generated_pairs()
    rows = {r["moderator"]: r for r in per_moderator(pairs)}
    for name in ("ana", "ben", "cy"):
        mine = [
            p.first_label if p.first_reviewer == name else p.second_label
            for p in pairs
            if name in (p.first_reviewer, p.second_reviewer)
        ]
        theirs = [
            p.second_label if p.first_reviewer == name else p.first_label
            for p in pairs
            if name in (p.first_reviewer, p.second_reviewer)
        ]
        assert rows[name]["pairs"] == len(mine)
        assert rows[name]["kappa"] == pytest.approx(cohen_kappa_score(mine, theirs))
    assert rows["cy"]["kappa"] < rows["ana"]["kappa"] - 0.1  # the careless one shows
    cats = {r["label"]: r for r in per_category(pairs)}
    for label in ("pizza", "not_food"):
        first = [p.first_label == label for p in pairs]
        second = [p.second_label == label for p in pairs]
        assert cats[label]["kappa"] == pytest.approx(cohen_kappa_score(first, second))
        assert cats[label]["agreed"] == sum(a and b for a, b in zip(first, second))
    assert kappa([], []) is None and kappa(["pizza"] * 3, ["pizza"] * 3) is None


def test_the_pages_blind_second_opinion_and_adjudication(dashboard):
    engine = dashboard.engine
    photo = seed_photo(dashboard, "pizza", 0.8, (200, 40, 40))
    _decide(dashboard, photo, "alice@acme.com", Decision("corrected", "flatbread"))

    at = run(sign_in(dashboard.app("second_opinions.py"), "alice@acme.com"))
    assert any("Nothing waiting" in s.value for s in at.success)  # her own decision never comes back
    at = run(sign_in(dashboard.app("second_opinions.py"), "bob@acme.com"))
    page_text = " ".join(str(e.value) for e in [*at.markdown, *at.caption, *at.success, *at.info, *at.metric])
    assert "alice" not in page_text and "Flatbread" not in page_text  # blind: not who, not what
    at.button(key=next(b.key for b in at.button if b.label == "Pizza")).click()
    run(at)
    assert any("Nothing waiting" in s.value for s in at.success)

    moderator = run(sign_in(dashboard.app("adjudication.py"), "bob@acme.com"))
    assert not moderator.button and any("does not include" in e.value for e in moderator.error)
    at = run(sign_in(dashboard.app("adjudication.py"), "lead@acme.com", "admin"))
    choices = [b.label for b in at.button if "—" in b.label]
    assert choices == ["Flatbread — alice@acme.com decided", "Pizza — bob@acme.com said (second opinion)"]
    at.button(key=next(b.key for b in at.button if b.label.startswith("Pizza"))).click()
    run(at)
    assert any("No disagreements" in s.value for s in at.success)
    now = moderation.refresh(engine, photo)
    assert (now.final_label, now.reviewed_by) == ("pizza", "lead@acme.com")
