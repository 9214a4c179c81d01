"""The Models page: the registry side by side, and switching the model new photos are classified by."""

from __future__ import annotations

from sqlalchemy import select

from db.engine import session_scope
from db.models import PredictionRow
from db.trained_models import list_models, register_model
from foodclf.labels import FOOD101_LABELS
from pages_support import jpeg, run, seed_photo, seed_review, sign_in, texts
from tiny_models import build_tiny_vit

PAGE = "models.py"
DESSERTS = ["cheesecake", "tiramisu", "waffles", "bao_buns"]


def _register(dashboard, tmp_path) -> int:
    folder = build_tiny_vit(tmp_path / "desserts", labels=DESSERTS, seed=3)
    with session_scope(dashboard.engine) as session:
        register_model(
            session,
            name="older",
            path=str(dashboard.settings.model),
            base_model="tiny",
            labels=["pizza"],
            metrics={"accuracy": 0.5},
            train_size=10,
            created_by="Ana",
        )
        model = register_model(
            session,
            name="desserts-v1",
            path=str(folder),
            base_model="tiny",
            labels=DESSERTS,
            metrics={"accuracy": 0.97, "macro_f1": 0.95, "top5_accuracy": 1.0},
            train_size=120,
            created_by="Ben",
        )
        return model.id


def test_no_trained_models_yet(dashboard):
    at = run(dashboard.app(PAGE))
    assert any("No trained models yet" in text for text in texts(at.info))
    assert any("FOODCLF_MODEL" in text for text in texts(at.markdown))


def test_models_side_by_side_and_switching(dashboard, tmp_path):
    chosen = _register(dashboard, tmp_path)
    at = run(dashboard.app(PAGE))
    table = at.dataframe[0].value
    assert list(table["name"]) == ["desserts-v1", "older"]
    assert list(table["accuracy"]) == [0.97, 0.5]
    assert list(table["active"]) == [False, False]

    at.selectbox(key="m_choice").set_value(chosen)
    run(at)
    at.button(key="m_switch").click()
    run(at)
    assert any("Switched" in text for text in texts(at.toast))
    assert list(at.dataframe[0].value["active"]) == [True, False]
    assert any("desserts-v1" in text for text in texts(at.markdown))

    # New uploads are classified by the new model and record its fingerprint.
    classify = dashboard.app("classify.py")
    sign_in(classify, "Ana", "admin")
    run(classify)
    classify.file_uploader(key="classify_upload").set_value([("cake.jpg", jpeg((250, 230, 200)), "image/jpeg")])
    run(classify)
    with session_scope(dashboard.engine) as session:
        [prediction] = session.scalars(select(PredictionRow)).all()
    assert prediction.model_id.endswith("desserts") and prediction.top_label in DESSERTS

    # And back to FOODCLF_MODEL.
    at.selectbox(key="m_choice").set_value(0)
    run(at)
    at.button(key="m_switch").click()
    run(at)
    assert list(at.dataframe[0].value["active"]) == [False, False]


def test_train_from_the_reviews_then_use_the_new_model(dashboard):
    from ui import cache

    colours = {"sushi": (30, 200, 60), "waffles": (230, 190, 60)}
    for label, (r, g, b) in colours.items():
        for i in range(5):
            photo = seed_photo(dashboard, "pizza", 0.4, (r + i, g - i, b + i))
            seed_review(dashboard, photo, "corrected", "Ana", label=label)
    at = sign_in(dashboard.app(PAGE), "Ana", "admin")
    run(at)
    assert any("10 reviewed photos in 2 categories" in text for text in texts(at.caption))
    at.radio(key="t_base").set_value("current")  # the tiny test model: quick
    at.button(key="t_start").click()
    run(at)
    state = cache.training_job().wait(120)
    assert state.error is None, state.error
    run(at)
    [done] = [text for text in texts(at.success) if "Trained" in text]
    # "current" keeps the tiny model's 101 labels (sushi and waffles among them); the frozen
    # evaluation slice (5 of these 10 photos, by their hash) is never trained on.
    assert "5 photos, 101 labels" in done
    assert list(at.dataframe[0].value["name"]) == [state.result["name"]]
    with session_scope(dashboard.engine) as session:
        [model] = list_models(session)
    assert (model.created_by, sorted(model.labels)) == ("Ana", sorted(FOOD101_LABELS))

    at.button(key="t_use").click()
    run(at)
    assert list(at.dataframe[0].value["active"]) == [True]
    assert cache.model_name() == model.path
    # The whole page agrees at once, without a reload: the header, the picker, no switch to make.
    assert any(f"In use: **{model.name}**" in text for text in texts(at.markdown))
    assert at.selectbox(key="m_choice").value == model.id
    assert at.button(key="m_switch").disabled
    assert not [b for b in at.button if b.key == "t_use"]


def test_training_needs_two_categories_and_a_name(dashboard):
    photo = seed_photo(dashboard, "pizza", 0.4, (1, 2, 3))
    seed_review(dashboard, photo, "confirmed", "Ana")
    at = run(dashboard.app(PAGE))
    assert at.button(key="t_start").disabled
    assert any("at least 2 categories" in text for text in texts(at.warning))


def test_a_worse_model_is_compared_refused_and_switched_only_with_a_reason(dashboard, tmp_path):
    from db.export_rows import ExportFilters
    from foodclf.training.train import train_model

    colours = {"sushi": (30, 200, 60), "waffles": (230, 190, 60)}
    for label, (r, g, b) in colours.items():
        for i in range(14):
            photo = seed_photo(dashboard, "pizza", 0.4, (r + 2 * i, g - 4 * i, b + 3 * i))
            seed_review(dashboard, photo, "corrected", "Ana", label=label)
    good = train_model(
        dashboard.settings,
        ExportFilters(),
        base=dashboard.settings.model,
        out=tmp_path / "good",
        activate=True,
        keep_labels=False,
    )
    assert good.activated and good.comparison["photos"] > 0
    worse = build_tiny_vit(tmp_path / "worse", labels=["sushi", "waffles"], seed=5)
    with session_scope(dashboard.engine) as session:
        challenger = register_model(
            session,
            name="worse",
            path=str(worse),
            base_model="tiny",
            labels=["sushi", "waffles"],
            metrics={},
            train_size=0,
            created_by="Ben",
        ).id

    at = dashboard.app(PAGE)
    at.session_state["reviewer"] = "Ana"
    run(at)
    at.selectbox(key="m_choice").set_value(challenger)
    run(at)
    at.button(key="m_compare").click()  # champion against challenger, before any switch
    run(at)
    assert not at.exception
    table = at.dataframe[1].value  # [0] is the registry
    assert list(table["figure"])[:2] == ["accuracy", "macro F1"] and table["in use"][0] == 1.0
    at.button(key="m_switch").click()
    run(at)
    assert any("Not switched" in text for text in texts(at.toast) + texts(at.warning))
    assert at.button(key="m_force").disabled  # no reason yet
    at.text_input(key="m_reason").set_value("the slice is too small to judge")
    run(at)
    at.button(key="m_force").click()
    run(at)
    with session_scope(dashboard.engine) as session:
        model = next(m for m in list_models(session) if m.id == challenger)
        assert model.active and model.promotions[-1]["reason"] == "the slice is too small to judge"
