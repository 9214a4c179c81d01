"""The Browse page: the gallery, its filters, paging, and a photo's details with its history."""

from __future__ import annotations

from pages_support import reviews, run, seed_photo, seed_review, sign_in, texts

PAGE = "browse.py"


def _tiles(at) -> list[str]:
    return [b.key for b in at.button if b.key and b.key.startswith("open_")]


def test_the_gallery_filters_and_opens_a_photos_history(dashboard):
    pizza = seed_photo(dashboard, "pizza", 0.9, (200, 40, 40))
    sushi = seed_photo(dashboard, "sushi", 0.3, (40, 200, 40))
    seed_review(dashboard, sushi, "corrected", "Alice", label="sashimi")
    at = run(dashboard.app(PAGE))
    assert _tiles(at) == [f"open_{sushi}", f"open_{pizza}"]  # newest first
    assert len(at.image) == 2
    assert any("Photos 1–2 of 2" in text for text in texts(at.caption))

    at.selectbox(key="b_status").set_value(True)
    run(at)
    assert _tiles(at) == [f"open_{sushi}"]
    at.selectbox(key="b_status").set_value(None)
    at.selectbox(key="b_final").set_value("sashimi")
    run(at)
    assert _tiles(at) == [f"open_{sushi}"]

    at.button(key=f"open_{sushi}").click()
    run(at)
    history = at.dataframe[0].value
    assert list(history["What"]) == ["Corrected to Sashimi (current)", "Predicted Sushi (30%)"]
    assert list(history["Who"]) == ["Alice", "tiny-test-model"]
    at.button(key="detail_close").click()
    run(at)
    assert not at.dataframe


def test_a_decision_from_the_details(dashboard):
    pizza = seed_photo(dashboard, "pizza", 0.9, (200, 40, 40))
    at = sign_in(dashboard.app(PAGE), "Eve")
    run(at)
    at.button(key=f"open_{pizza}").click()
    run(at)
    at.button(key=f"b_{pizza}_confirm").click()
    run(at)
    assert reviews(dashboard) == [(pizza, "confirmed", "pizza", "Eve")]
    assert list(at.dataframe[0].value["What"])[0] == "Confirmed Pizza (current)"


def test_paging_older_and_newer(dashboard):
    ids = [seed_photo(dashboard, "pizza", 0.5, (i * 9, 0, 0)) for i in range(26)]
    at = run(dashboard.app(PAGE))
    assert len(_tiles(at)) == 24 and _tiles(at)[0] == f"open_{ids[-1]}"
    assert at.button(key="page_newer").disabled
    at.button(key="page_older").click()
    run(at)
    assert _tiles(at) == [f"open_{ids[1]}", f"open_{ids[0]}"]
    assert any("Photos 25–26 of 26" in text for text in texts(at.caption))
    at.button(key="page_newer").click()
    run(at)
    assert len(_tiles(at)) == 24


def test_empty_states(dashboard):
    at = run(dashboard.app(PAGE))
    assert any("No photos stored yet" in text for text in texts(at.info))
    seed_photo(dashboard, "pizza", 0.9, (200, 40, 40))
    at.selectbox(key="b_status").set_value(True)
    run(at)
    assert any("No photos match these filters" in text for text in texts(at.info))


def test_the_same_decision_twice_is_saved_once_without_a_warning(dashboard):
    pizza = seed_photo(dashboard, "pizza", 0.9, (200, 40, 40))
    at = run(sign_in(dashboard.app(PAGE), "Eve"))
    at.button(key=f"open_{pizza}").click()
    run(at)
    for _ in range(2):  # a double click: the second lands on the photo redrawn with Eve's decision
        at.button(key=f"b_{pizza}_confirm").click()
        run(at)
    assert reviews(dashboard) == [(pizza, "confirmed", "pizza", "Eve")]
    assert not at.warning  # no conflict with herself
    assert texts(at.toast) == []  # and no second "Confirmed" either
