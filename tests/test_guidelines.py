"""Guidelines per category: written by admins, checked, shown beside the buttons and under a picked category."""

from __future__ import annotations

import pytest

from foodclf.errors import FoodclfError
from foodclf.guidelines import read_guideline, write_guideline
from pages_support import run, seed_photo, seed_review, sign_in

RAMEN = "Noodles in broth, often with egg and pork; pho has flat rice noodles and herbs."


def test_write_read_and_every_bad_input_is_refused_with_a_reason(dashboard):
    engine = dashboard.engine
    ramen = [seed_photo(dashboard, "ramen", 0.9, (40 * i, 90, 90)) for i in range(5)]
    for image_id in ramen[:4]:
        seed_review(dashboard, image_id, "confirmed", "alice")
    pizza = seed_photo(dashboard, "pizza", 0.9, (200, 40, 40))
    seed_review(dashboard, pizza, "confirmed", "alice")
    assert read_guideline(engine, "ramen") is None
    with pytest.raises(FoodclfError, match="short description"):
        write_guideline(engine, "ramen", "   ", [], by="lead")
    with pytest.raises(FoodclfError, match="at most 3"):
        write_guideline(engine, "ramen", RAMEN, ramen[:4], by="lead")
    with pytest.raises(FoodclfError, match="decided as Ramen"):
        write_guideline(engine, "ramen", RAMEN, [ramen[0], pizza], by="lead")
    with pytest.raises(FoodclfError, match="decided as Ramen"):
        write_guideline(engine, "ramen", RAMEN, [ramen[4]], by="lead")  # not decided at all
    with pytest.raises(FoodclfError, match="under 1000"):
        write_guideline(engine, "ramen", "x" * 1001, [], by="lead")
    assert read_guideline(engine, "ramen") is None  # nothing saved by a refusal
    guide = write_guideline(engine, "ramen", f"  {RAMEN}\n", [ramen[1], ramen[0], ramen[1]], by="lead")
    assert (guide.description, [i for i, _ in guide.examples], guide.updated_by) == (RAMEN, ramen[1::-1], "lead")
    again = write_guideline(engine, "ramen", "Shorter.", [], by="lead2")
    assert (again.description, again.examples, again.updated_by) == ("Shorter.", [], "lead2")


def test_an_admin_writes_one_and_moderators_see_it_where_they_decide(dashboard):
    ramen = seed_photo(dashboard, "ramen", 0.9, (40, 90, 90))
    seed_review(dashboard, ramen, "confirmed", "alice")
    photo = seed_photo(dashboard, "ramen", 0.4, (90, 40, 90))  # waiting in the queue

    moderator = run(sign_in(dashboard.app("guidelines.py"), "bob@acme.com"))
    assert not moderator.text_area and any("does not include" in e.value for e in moderator.error)

    at = run(sign_in(dashboard.app("guidelines.py"), "lead@acme.com", "admin"))
    at.selectbox(key="g_label").set_value("ramen")
    run(at)
    at.text_area(key="g_text_ramen").set_value(RAMEN)
    at.checkbox(key=f"g_ex_ramen_{ramen}").check()
    at.button[-1].click()
    run(at)
    assert any("Guideline for Ramen saved" in t.value for t in at.toast)
    guide = read_guideline(dashboard.engine, "ramen")
    assert [i for i, _ in guide.examples] == [ramen]

    queue = run(sign_in(dashboard.app("review_queue.py"), "bob@acme.com"))
    notes = [m.value for m in queue.markdown if RAMEN in m.value]
    assert notes == [f":material/menu_book: **Ramen**: {RAMEN}"]  # beside the buttons, for the model's answer
    # Correcting to a category with a guideline shows it under the picker; one without shows nothing more.
    queue.selectbox(key=f"q_{photo}_label").set_value("pizza")
    run(queue)
    assert len([m for m in queue.markdown if "menu_book" in m.value]) == 1
    queue.selectbox(key=f"q_{photo}_label").set_value("ramen")
    run(queue)
    assert len([m for m in queue.markdown if RAMEN in m.value]) == 2
