"""The review queue: least confident first, decisions advance, undo, conflicts, the grid, filters."""

from __future__ import annotations

import time

import pytest

from pages_support import reviews, run, seed_photo, seed_review, sign_in, texts

PAGE = "review_queue.py"


@pytest.fixture
def three(dashboard):
    """Pizza 90 %, sushi 30 %, steak 60 %: the queue shows sushi, steak, pizza."""
    return {
        "pizza": seed_photo(dashboard, "pizza", 0.9, (200, 40, 40)),
        "sushi": seed_photo(dashboard, "sushi", 0.3, (40, 200, 40)),
        "steak": seed_photo(dashboard, "steak", 0.6, (40, 40, 200), source="upload"),
    }


def _queue(dashboard, reviewer="Bob"):
    """The queue for a signed-in moderator (None: nobody signed in, no sign-in configured: the local admin)."""
    at = dashboard.app(PAGE)
    if reviewer:
        sign_in(at, reviewer)
    return run(at)


def _shown(at) -> str:
    """The category the one-at-a-time view shows (the model's answer)."""
    return next(m.value for m in at.metric if m.label == "Model's answer")


def _left(at) -> str:
    return next(m.value for m in at.metric if m.label == "Left to review")


def test_least_confident_first_and_each_decision_advances(dashboard, three):
    at = _queue(dashboard)
    assert (_shown(at), _left(at)) == ("Sushi", "3")
    at.button(key=f"q_{three['sushi']}_confirm").click()
    run(at)
    assert (_shown(at), _left(at)) == ("Steak", "2")
    at.button(key=f"q_{three['steak']}_not_food").click()
    run(at)
    assert (_shown(at), _left(at)) == ("Pizza", "1")
    at.selectbox(key=f"q_{three['pizza']}_label").set_value("sushi")
    at.button(key=f"q_{three['pizza']}_correct").click()
    run(at)
    assert any("Queue is empty" in text for text in texts(at.success))
    assert reviews(dashboard) == [
        (three["sushi"], "confirmed", "sushi", "Bob"),
        (three["steak"], "not_food", "not_food", "Bob"),
        (three["pizza"], "corrected", "sushi", "Bob"),
    ]


def test_skip_is_saved_and_moves_on_for_this_session(dashboard, three):
    at = _queue(dashboard)
    at.button(key=f"q_{three['sushi']}_skip").click()
    run(at)
    assert _shown(at) == "Steak"
    assert _left(at) == "3"  # a skipped photo stays unreviewed for someone else
    assert reviews(dashboard) == [(three["sushi"], "skipped", None, "Bob")]
    # Someone else still gets it first.
    assert _shown(_queue(dashboard, "Carol")) == "Sushi"


def test_undo_brings_the_last_photo_back(dashboard, three):
    at = _queue(dashboard)
    at.button(key=f"q_{three['sushi']}_confirm").click()
    run(at)
    at.button(key="undo").click()
    run(at)
    assert (_shown(at), _left(at)) == ("Sushi", "3")
    assert any("Undone: Confirmed Sushi" in text for text in texts(at.toast))
    assert [r[1] for r in reviews(dashboard)] == ["confirmed", "undone"]
    # Judged again from the undo: the queue goes on from there.
    at.button(key=f"q_{three['sushi']}_not_food").click()
    run(at)
    assert _shown(at) == "Steak"


def test_undo_with_nothing_to_undo_says_so(dashboard, three):
    at = _queue(dashboard)
    at.button(key="undo").click()
    run(at)
    assert any("Nothing of yours to undo" in text for text in texts(at.info))


def test_without_sign_in_decisions_are_the_local_admins(dashboard, three):
    at = _queue(dashboard, reviewer=None)
    assert not [t for t in at.text_input if t.key == "reviewer_entry"]  # no name to type
    at.button(key=f"q_{three['sushi']}_confirm").click()
    run(at)
    assert reviews(dashboard) == [(three["sushi"], "confirmed", "sushi", "local-admin")]


def test_a_conflict_names_who_decided_and_lets_the_moderator_judge_again(dashboard, three):
    at = _queue(dashboard, "Bob")
    seed_review(dashboard, three["sushi"], "corrected", "Alice", label="sashimi")  # while Bob looks
    at.button(key=f"q_{three['sushi']}_confirm").click()
    run(at)
    [warning] = texts(at.warning)
    assert "Alice" in warning and "Sashimi" in warning  # labels shown as everywhere else
    assert [r[3] for r in reviews(dashboard)] == ["Alice"]  # nothing of Bob's was written
    # The photo is shown again as it is now; deciding again replaces Alice's decision on purpose.
    assert _shown(at) == "Sushi"
    assert any("Alice" in text for text in texts(at.success))
    at.button(key=f"q_{three['sushi']}_confirm").click()
    run(at)
    assert reviews(dashboard)[-1] == (three["sushi"], "confirmed", "sushi", "Bob")
    assert _shown(at) == "Steak"


def test_filters_narrow_the_queue(dashboard, three):
    at = _queue(dashboard)
    at.selectbox(key="q_label").set_value("pizza")
    run(at)
    assert (_shown(at), _left(at)) == ("Pizza", "1")
    at.selectbox(key="q_label").set_value(None)
    at.slider(key="q_score").set_value((0.5, 1.0))
    run(at)
    assert (_shown(at), _left(at)) == ("Steak", "2")
    at.selectbox(key="q_source").set_value("upload")
    run(at)
    assert (_shown(at), _left(at)) == ("Steak", "1")
    at.slider(key="q_score").set_value((0.0, 0.2))
    run(at)
    assert any("No unreviewed photos match" in text for text in texts(at.info))


def test_an_empty_queue_says_so(dashboard):
    at = _queue(dashboard)
    assert any("Queue is empty — nothing to review" in text for text in texts(at.success))
    assert _left(at) == "0"


def test_grid_confirms_many_at_once(dashboard, three):
    at = _queue(dashboard)
    at.segmented_control(key="queue_mode").set_value("Grid")
    run(at)
    [editor] = at.data_editor
    assert list(editor.value["predicted"]) == ["Sushi", "Steak", "Pizza"]
    assert all(str(url).startswith("data:image/jpeg;base64,") for url in editor.value["photo"])
    at.session_state[editor.key] = {
        "edited_rows": {0: {"confirm": True}, 2: {"confirm": True}},
        "added_rows": [],
        "deleted_rows": [],
    }
    run(at)
    at.button(key="grid_confirm").click()
    run(at)
    assert sorted(reviews(dashboard)) == sorted(
        [
            (three["sushi"], "confirmed", "sushi", "Bob"),
            (three["pizza"], "confirmed", "pizza", "Bob"),
        ]
    )
    assert list(at.data_editor[0].value["predicted"]) == ["Steak"]
    assert any("Confirmed 2 photos" in text for text in texts(at.toast))


def test_grid_tick_all(dashboard, three):
    at = _queue(dashboard)
    at.segmented_control(key="queue_mode").set_value("Grid")
    run(at)
    at.button(key="grid_all").click()
    run(at)
    at.button(key="grid_confirm").click()
    run(at)
    assert len(reviews(dashboard)) == 3
    assert any("Queue is empty" in text for text in texts(at.success))


def test_a_decision_on_a_photo_just_shown_is_not_saved(dashboard, three, monkeypatch):
    """The second click of a double click lands on the next photo within a moment: ignored."""
    monkeypatch.setattr("ui.decisions.REACTION_S", 0.5)
    at = _queue(dashboard)
    at.button(key=f"q_{three['sushi']}_confirm").click()
    run(at)
    assert _shown(at) == "Sushi" and reviews(dashboard) == []
    assert any("too soon to be meant for it" in text for text in texts(at.toast))
    time.sleep(0.5)  # looked at it
    at.button(key=f"q_{three['sushi']}_confirm").click()
    run(at)
    assert reviews(dashboard) == [(three["sushi"], "confirmed", "sushi", "Bob")]
    # The next photo is new again: a click right away is dropped, one after a look is saved.
    at.button(key=f"q_{three['steak']}_skip").click()
    run(at)
    assert _shown(at) == "Steak" and len(reviews(dashboard)) == 1


def test_a_photo_drawn_by_a_run_cut_short_counts_as_not_yet_seen(dashboard, three, monkeypatch):
    """A click that interrupts the run drawing a photo was made before the page was complete."""
    monkeypatch.setattr("ui.decisions.REACTION_S", 0.5)
    at = _queue(dashboard)
    time.sleep(0.5)
    at.session_state["decision_shown_at"] = {}  # as if the run never reached mark_drawn()
    at.session_state["decision_drawing"] = {(f"q_{three['sushi']}", three["sushi"], None)}
    at.button(key=f"q_{three['sushi']}_confirm").click()
    run(at)
    assert reviews(dashboard) == []


def _in_order(node):
    """Every element of the page, in the order it is drawn."""
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _in_order(child)


def test_a_correction_without_a_category_is_explained_beside_its_button(dashboard, three):
    at = _queue(dashboard)
    at.button(key=f"q_{three['sushi']}_correct").click()
    run(at)
    drawn = list(_in_order(at.main))
    button = next(i for i, e in enumerate(drawn) if getattr(e, "key", None) == f"q_{three['sushi']}_correct")
    error = next(i for i, e in enumerate(drawn) if e.type == "error")
    assert "Pick a category" in drawn[error].value
    assert error == button + 1  # right under the button, not at the top of the page
    assert reviews(dashboard) == []


def test_the_candidates_are_buttons_with_keys_one_to_five(dashboard, three):
    at = _queue(dashboard)
    picks = [at.button(key=f"q_{three['sushi']}_pick{n}") for n in (1, 2, 3, 4)]
    # The seeded prediction's four candidates: the model's answer, then the others by score.
    assert [(b.label, b.proto.shortcut) for b in picks] == [
        ("Sushi", "1"),
        ("Pizza", "2"),
        ("Steak", "3"),
        ("Ramen", "4"),
    ]
    with pytest.raises(KeyError):
        at.button(key=f"q_{three['sushi']}_pick5")
    picks[2].click()
    run(at)
    assert _shown(at) == "Steak"  # the next photo
    at.button(key=f"q_{three['steak']}_pick1").click()  # 1: the model's answer, stored as confirmed
    run(at)
    assert reviews(dashboard) == [
        (three["sushi"], "corrected", "steak", "Bob"),
        (three["steak"], "confirmed", "steak", "Bob"),
    ]
    assert "**?** all keys" in " ".join(texts(at.caption))
