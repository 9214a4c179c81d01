"""The Classify page: upload, see the answer, confirm or correct; refused files; known photos."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from db.engine import session_scope
from db.models import ImageRow, PredictionRow
from pages_support import jpeg, reviews, run, sign_in, texts

PAGE = "classify.py"


def _upload(at, *files):
    at.file_uploader(key="classify_upload").set_value([(name, data, "image/jpeg") for name, data in files])
    return run(at)


def _signed_in(dashboard, name="Alice"):
    return run(sign_in(dashboard.app(PAGE), name))


def _button(at, suffix: str):
    return next(b for b in at.button if b.key and b.key.endswith(suffix))


def _count(dashboard, model) -> int:
    with session_scope(dashboard.engine) as session:
        return session.scalar(select(func.count()).select_from(model))


def test_signed_out_nothing_can_be_uploaded(dashboard):
    at = dashboard.app(PAGE)
    at.user = {"is_logged_in": False}
    run(at)
    assert not at.file_uploader  # the sign-in page, not the uploader
    assert at.button(key="signin_0")


def test_an_upload_shows_the_top_category_chart_and_badge(dashboard):
    at = _upload(_signed_in(dashboard), ("lunch.jpg", jpeg()))
    metric = at.metric[0]
    assert metric.label == "Model's answer" and metric.value  # a display label, e.g. "Panna cotta"
    assert "sure" in metric.delta
    assert len(at.get("vega_lite_chart")) == 1  # the top-k bars
    # The tiny random model is never sure of anything: the badge shows.
    assert any("Uncertain" in text for text in texts(at.markdown))
    assert _count(dashboard, ImageRow) == 1 and _count(dashboard, PredictionRow) == 1
    assert reviews(dashboard) == []  # stored for review, not yet decided


def test_confirm_saves_the_models_label_with_the_reviewer(dashboard):
    at = _upload(_signed_in(dashboard, "Alice"), ("lunch.jpg", jpeg()))
    top = at.metric[0].value
    _button(at, "_confirm").click()
    run(at)
    [(image_id, action, label, reviewer)] = reviews(dashboard)
    assert (action, reviewer) == ("confirmed", "Alice")
    assert label.replace("_", " ").lower() == top.lower()
    assert any(top in text and "Confirmed" in text for text in texts(at.success))


def test_correct_saves_the_chosen_category(dashboard):
    at = _upload(_signed_in(dashboard, "Bob"), ("lunch.jpg", jpeg()))
    other = "sushi" if at.metric[0].value != "Sushi" else "pizza"
    next(s for s in at.selectbox if s.key.endswith("_label")).set_value(other)
    _button(at, "_correct").click()
    run(at)
    [(_, action, label, reviewer)] = reviews(dashboard)
    assert (action, label, reviewer) == ("corrected", other, "Bob")


def test_correct_to_a_new_category_typed_in(dashboard):
    at = _upload(_signed_in(dashboard), ("lunch.jpg", jpeg()))
    next(t for t in at.text_input if t.key.endswith("_new")).input("Bao Buns")
    _button(at, "_correct").click()
    run(at)
    assert [(r[1], r[2]) for r in reviews(dashboard)] == [("corrected", "bao_buns")]
    # The new category is offered from now on.
    assert "Bao buns" in next(s for s in at.selectbox if s.key.endswith("_label")).options


def test_not_food_and_skip(dashboard):
    at = _upload(_signed_in(dashboard), ("a.jpg", jpeg((10, 10, 10))), ("b.jpg", jpeg((250, 250, 250))))
    not_food = [b for b in at.button if b.key.endswith("_not_food")]
    skip = [b for b in at.button if b.key.endswith("_skip")]
    not_food[0].click()
    run(at)
    skip = [b for b in at.button if b.key.endswith("_skip")]
    skip[1].click()
    run(at)
    assert [(r[1], r[2]) for r in reviews(dashboard)] == [("not_food", "not_food"), ("skipped", None)]


def test_a_correction_without_a_category_says_what_to_do(dashboard):
    at = _upload(_signed_in(dashboard), ("lunch.jpg", jpeg()))
    _button(at, "_correct").click()
    run(at)
    assert any("Pick a category" in text for text in texts(at.error))
    assert reviews(dashboard) == []


def test_a_refused_file_shows_its_reason_and_the_rest_go_on(dashboard):
    at = _upload(_signed_in(dashboard), ("notes.jpg", b"this is not a photo"), ("lunch.jpg", jpeg()))
    [error] = texts(at.error)
    assert "notes.jpg" in error and "not an image we can open" in error
    assert len(at.metric) == 1
    assert _count(dashboard, ImageRow) == 1


def test_a_known_photo_shows_its_history_instead_of_being_classified_again(dashboard):
    data = jpeg((30, 140, 60))
    at = _upload(_signed_in(dashboard, "Alice"), ("first.jpg", data))
    _button(at, "_confirm").click()
    run(at)

    again = _upload(_signed_in(dashboard, "Bob"), ("again.jpg", data))
    assert any("Already stored" in text for text in texts(again.info))
    assert any("Confirmed" in text and "Alice" in text for text in texts(again.success))
    assert _count(dashboard, PredictionRow) == 1  # not classified a second time
    history = again.dataframe[0].value
    assert list(history["What"])[0].startswith("Confirmed")


def test_a_sign_in_that_expires_blocks_decisions_on_a_shown_photo(dashboard):
    at = _upload(_signed_in(dashboard, "Alice"), ("lunch.jpg", jpeg()))
    confirm = _button(at, "_confirm")
    sign_in(at, "Alice", iat=time.time() - 13 * 3600)  # past FOODCLF_SESSION_HOURS (12) while the page is open
    confirm.click()
    run(at)
    assert reviews(dashboard) == []
    assert any("Your sign-in has expired" in text for text in texts(at.markdown))
